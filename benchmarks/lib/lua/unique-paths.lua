-- Every request gets a new path: <prefix><n>. Run wrk with one thread (-t1) so n is unique.
local unique_prefix = "/obj/1024/u"
local unique_n = 0
local unique_init = init
init = function(args)
  for _, a in ipairs(args) do
    local v = string.match(a, "^prefix=(.*)$")
    if v then unique_prefix = v end
  end
  if unique_init then unique_init(args) end
end
request = function()
  unique_n = unique_n + 1
  return wrk.format("GET", unique_prefix .. unique_n)
end
