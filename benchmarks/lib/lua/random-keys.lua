-- Every request picks one of `keys` paths <prefix><n>, n uniform in 1..keys: hits spread over the
-- whole key set, so a larger set costs what it costs in lookups and memory locality.
local random_prefix = "/obj/1024/g"
local random_keys = 1000
local random_init = init
init = function(args)
  for _, a in ipairs(args) do
    local p = string.match(a, "^prefix=(.*)$")
    if p then random_prefix = p end
    local k = string.match(a, "^keys=(%d+)$")
    if k then random_keys = tonumber(k) end
  end
  math.randomseed(os.time())
  if random_init then random_init(args) end
end
request = function()
  return wrk.format("GET", random_prefix .. math.random(1, random_keys))
end
