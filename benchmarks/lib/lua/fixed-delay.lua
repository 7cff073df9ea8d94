-- Each connection waits delay_ms after a response before its next request: a modest, steady
-- rate of about connections / (delay + latency).
local delay_ms = 10
local delay_init = init
init = function(args)
  for _, a in ipairs(args) do
    local v = string.match(a, "^delay_ms=(%d+)$")
    if v then delay_ms = tonumber(v) end
  end
  if delay_init then delay_init(args) end
end
delay = function()
  return delay_ms
end
