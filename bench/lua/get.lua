-- GET BENCH_PATH with the tokens of the tokens file in turn (e.g. one user's history, page N).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local tokens = common.load_tokens(os.getenv("BENCH_TOKENS"))
local path = os.getenv("BENCH_PATH")
assert(path, "BENCH_PATH is required")

setup = common.setup
response = common.response
done = common.done

local next_token = 0

function init(args)
  next_token = (thread_id or 0) % #tokens
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = tokens[next_token].auth }, nil)
end
