-- Pairs of requests: POST /holds (a random payer, its own token, reserves a tiny amount for a random
-- payee), then POST /holds/{id}/capture {} with the payee's token, which moves it.
-- The tokens file holds one token for each of the 1,000 users (as for uniform), so every payee can
-- capture. wrk keeps one Lua state per thread and does not say which connection an answer came on, so
-- a placed hold goes into a queue that the thread's next request takes first: the capture usually
-- leaves on another connection than its hold, and at most one hold per connection waits at any time.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local tokens = common.load_tokens(os.getenv("BENCH_TOKENS"))
local amount = os.getenv("BENCH_AMOUNT") or "0.000001"
local currency = os.getenv("BENCH_CURRENCY") or "USDT"
local expires_in = tonumber(os.getenv("BENCH_EXPIRES_IN") or "3600")
local idempotency = os.getenv("BENCH_IDEMPOTENCY") == "1"

local users, token_of = {}, {}
for _, t in ipairs(tokens) do
  if not token_of[t.id] then
    token_of[t.id] = t
    users[#users + 1] = t.id
  end
end
assert(#users >= 2, "holds need at least two users")

setup = common.setup
done = common.done

-- Holds placed and not yet sent for capture: {id = hold id, payee = user id}
local queue, first, last = {}, 1, 0
local sequence = 0

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

local function headers_for(token)
  local headers = { ["Authorization"] = token.auth, ["Content-Type"] = "application/json" }
  if idempotency then
    sequence = sequence + 1
    headers["Idempotency-Key"] = string.format("bench-%d-%d-%d-%d", os.time(), thread_id or 0, sequence, math.random(1e9))
  end
  return headers
end

function request()
  if first <= last then
    local hold = queue[first]
    queue[first] = nil
    first = first + 1
    common.count("captures_sent")
    return wrk.format("POST", "/holds/" .. hold.id .. "/capture", headers_for(token_of[hold.payee]), "{}")
  end
  local payer = tokens[math.random(#tokens)]
  local payee = payer.id
  while payee == payer.id do
    payee = users[math.random(#users)]
  end
  common.count("holds_sent")
  local body = string.format(
    '{"to_user_id":%d,"currency":"%s","amount":"%s","expires_in":%d}', payee, currency, amount, expires_in
  )
  return wrk.format("POST", "/holds", headers_for(payer), body)
end

function response(status, headers, body)
  common.response(status, headers, body)
  if status < 200 or status > 299 then
    return
  end
  -- A capture answers {hold, transaction}; a placed hold is the hold itself, whose first key is its id.
  if body:find('"transaction"%s*:') then
    common.count("captures_ok")
    return
  end
  local id = body:match('"id"%s*:%s*"?(%d+)')
  local payee = body:match('"payee_user_id"%s*:%s*"?(%d+)')
  if id and payee and token_of[tonumber(payee)] then
    common.count("holds_ok")
    last = last + 1
    queue[last] = { id = id, payee = tonumber(payee) }
  else
    common.count("unrecognised_2xx")
  end
end
