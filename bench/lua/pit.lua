-- GET BENCH_PATH?at=<instant>: the wallet as it stood at a random instant between BENCH_AT_FIRST and
-- BENCH_AT_LAST (Unix seconds), RFC 3339 in UTC with random microseconds, tokens of the file in turn.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local tokens = common.load_tokens(os.getenv("BENCH_TOKENS"))
local path = os.getenv("BENCH_PATH")
local first = tonumber(os.getenv("BENCH_AT_FIRST"))
local last = tonumber(os.getenv("BENCH_AT_LAST"))
assert(path and first and last and first < last, "BENCH_PATH, BENCH_AT_FIRST < BENCH_AT_LAST are required")

setup = common.setup
response = common.response
done = common.done

local next_token = 0

function init(args)
  next_token = (thread_id or 0) % #tokens
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  next_token = next_token % #tokens + 1
  local at = math.random(first, last - 1)
  local stamp = os.date("!%Y-%m-%dT%H:%M:%S", at) .. string.format(".%06dZ", math.random(0, 999999))
  return wrk.format("GET", path .. "?at=" .. stamp, { ["Authorization"] = tokens[next_token].auth }, nil)
end
