-- POST /wallet/transfer: a random sender (its own token) pays a random other user a tiny amount.
-- uniform: the tokens file holds one token for each of the 1,000 users, so any two of them trade.
-- hot: it holds several tokens of just two users, so every transfer is between the same two wallets
-- (both directions).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local tokens = common.load_tokens(os.getenv("BENCH_TOKENS"))
local amount = os.getenv("BENCH_AMOUNT") or "0.000001"
local currency = os.getenv("BENCH_CURRENCY") or "USDT"
local idempotency = os.getenv("BENCH_IDEMPOTENCY") == "1"

local users = {}
do
  local seen = {}
  for _, t in ipairs(tokens) do
    if not seen[t.id] then
      seen[t.id] = true
      users[#users + 1] = t.id
    end
  end
end
assert(#users >= 2, "transfers need at least two users")

setup = common.setup
response = common.response
done = common.done

local sequence = 0

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  local sender = tokens[math.random(#tokens)]
  local recipient = sender.id
  while recipient == sender.id do
    recipient = users[math.random(#users)]
  end
  local headers = { ["Authorization"] = sender.auth, ["Content-Type"] = "application/json" }
  if idempotency then
    sequence = sequence + 1
    headers["Idempotency-Key"] = string.format("bench-%d-%d-%d-%d", os.time(), thread_id or 0, sequence, math.random(1e9))
  end
  local body = string.format('{"to_user_id":%d,"currency":"%s","amount":"%s"}', recipient, currency, amount)
  return wrk.format("POST", "/wallet/transfer", headers, body)
end
