-- wrk script for bench/peer.py's same-load latency: the harness's request (../shared/peers/common/post.lua's body and
-- headers), each connection waiting a random time between its answer and its next request, drawn from an
-- exponential distribution of the mean given after `--` (ms), so the requests of all connections arrive about as
-- independently as real callers' do, at about connections x 1,000 / mean per second whatever the server.
wrk.method = "POST"
wrk.body   = '{"hello":"world","n":1,"items":[1,2,3]}'
wrk.headers["Content-Type"] = "application/json"

local mean_ms = 10

function init(args)
  mean_ms = tonumber(args[1]) or mean_ms
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function delay()
  return -math.log(1 - math.random()) * mean_ms
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect, e.read, e.write, e.status, e.timeout))
end
