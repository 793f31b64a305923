-- wrk script for bench/run.sh. Configured through the environment, read once when
-- wrk loads the script (in its main state and in each thread's):
--   BENCH_METHOD     GET or POST (default GET)
--   BENCH_TOKEN      sent as X-Vault-Token when set
--   BENCH_BODY_FILE  a file whose bytes are the request body (sent as application/json)
--   BENCH_MODE       "fixed" (default): the same request every time, built once;
--                    "unique": the path gets "-<thread>-<n>" appended, n counting up,
--                    so every request names a new key (kv v2 writes).
-- done() prints one machine-readable line starting with "BENCH " that run.sh parses.

local method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN") or ""
local body_file = os.getenv("BENCH_BODY_FILE") or ""
local mode = os.getenv("BENCH_MODE") or "fixed"

local body = nil
if body_file ~= "" then
   local f = assert(io.open(body_file, "rb"))
   body = f:read("*a")
   f:close()
end

wrk.method = method
wrk.body = body
if token ~= "" then
   wrk.headers["X-Vault-Token"] = token
end
if body then
   wrk.headers["Content-Type"] = "application/json"
end

local next_id = 0
function setup(thread)
   next_id = next_id + 1
   thread:set("thread_id", next_id)
end

if mode == "unique" then
   local counter = 0
   function request()
      counter = counter + 1
      return wrk.format(nil, wrk.path .. "-" .. tostring(thread_id) .. "-" .. counter)
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d connect_errors=%d read_errors=%d " ..
      "write_errors=%d non2xx=%d timeouts=%d mean_us=%.1f p50_us=%d p90_us=%d " ..
      "p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
