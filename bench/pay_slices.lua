-- wrk script of bench/pay_vs_peer.py: every request is the next line of WRK_FILE in
-- this thread's own slice (thread t of T sends lines t, t+T, t+2T, ...), so nothing is
-- sent twice by accident.  WRK_MODE=get: a line is a path; post: a line is a body
-- POSTed to WRK_PATH.  WRK_WRAP=1 lets a slice start again (the duplicates leg);
-- otherwise a slice that runs out asks for /__exhausted__ (a 404, counted as bad).
-- A response is good when it is a 200 whose body holds WRK_EXPECT; done() prints
-- "slices: bad B sent S" for the bench to check.
local lines = {}
for line in io.lines(os.getenv("WRK_FILE")) do lines[#lines + 1] = line end
local mode = os.getenv("WRK_MODE") or "get"
local post_path = os.getenv("WRK_PATH") or "/"
local wrap = os.getenv("WRK_WRAP") == "1"
local expect = os.getenv("WRK_EXPECT") or ""
local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")

local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

n = 0
bad = 0
sent = 0
function request()
  local i = tid + n * nthreads + 1
  n = n + 1
  if i > #lines then
    if not wrap then
      return wrk.format("GET", "/__exhausted__")
    end
    i = (i - 1) % #lines + 1
  end
  sent = sent + 1
  if mode == "post" then
    return wrk.format("POST", post_path, {["Content-Type"] = "text/xml"}, lines[i])
  end
  return wrk.format("GET", lines[i])
end

function response(status, headers, body)
  if status ~= 200 or (expect ~= "" and not string.find(body, expect, 1, true)) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local b, s = 0, 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    s = s + t:get("sent")
  end
  io.write(string.format("slices: bad %d sent %d\n", b, s))
end
