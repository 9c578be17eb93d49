-- wrk script: POST one L1/L0 packet per request, each with a packet_id of its own.
--
--   BENCH_TOKEN=wdn_agent_... BENCH_AGENT=bench-bot \
--     wrk -t2 -c16 -d15s --latency -s bench/wrk/post.lua http://127.0.0.1:8080/v1/actions
--
-- Packets alternate between a small refund (stripe.refund, under the approval limit, order
-- reconciled: L1) and a CRM note (crm.log_note: L0); an A2 agent executes both at once under
-- the shipped policies. packet_id = run nonce + thread id + counter, so no two requests of one
-- run (or of two runs) share one. Responses outside 2xx are counted; `done()` prints one line
-- `WRK_JSON {...}` with the totals, the latency percentiles (µs) and the first bad answer.

local threads = {}

function setup(thread)
   thread:set("id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   local token = os.getenv("BENCH_TOKEN") or ""
   agent = os.getenv("BENCH_AGENT") or "bench-bot"
   math.randomseed(os.time() * 1000 + id * 7919 + math.floor(os.clock() * 1e6))
   nonce = string.format("%06x%06x", math.random(0, 0xffffff), math.random(0, 0xffffff))
   counter = 0
   responses = 0
   non2xx = 0
   first_error = ""
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if token ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. token
   end
end

local refund = '{"packet_id":"%s","agent":"%s","action":{"tool":"stripe.refund","params":'
   .. '{"charge":"ch_%s","amount":%d,"currency":"usd"}},"evidence":{"reconciled":true,'
   .. '"order_total":20000},"proof":{"invariant_checks":[{"id":"refund_reconciled",'
   .. '"status":"PASS","value":true}]},"context":{"task_id":"bench"}}'
local note = '{"packet_id":"%s","agent":"%s","action":{"tool":"crm.log_note","params":'
   .. '{"record_id":"rec_%d","body":"called the customer about order %d"}},"evidence":{},'
   .. '"proof":{"invariant_checks":[]},"context":{"task_id":"bench"}}'

function request()
   counter = counter + 1
   local packet_id = string.format("b_%s_%d_%d", nonce, id, counter)
   local body
   if counter % 2 == 1 then
      body = string.format(refund, packet_id, agent, packet_id, 100 + (counter % 4000))
   else
      body = string.format(note, packet_id, agent, counter % 500, counter)
   end
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == "" then
         first_error = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function json_string(s)
   s = string.gsub(s, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local answered, bad, first = 0, 0, ""
   for _, thread in ipairs(threads) do
      answered = answered + (thread:get("responses") or 0)
      bad = bad + (thread:get("non2xx") or 0)
      local e = thread:get("first_error") or ""
      if first == "" then first = e end
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,"responses":%d,"non2xx":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},"first_error":%s}\n',
      summary.requests, seconds, summary.requests / seconds, answered, bad,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, json_string(first)))
end
