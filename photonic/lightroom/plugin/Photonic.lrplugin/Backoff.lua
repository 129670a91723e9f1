--[[ How long the bridge client waits after its n-th failure in a row: exponential from a base,
capped, with jitter so that a bridge which restarts is not hit by every retry at once. ]]

local Backoff = {}

Backoff.BASE_S = 1
Backoff.CAP_S = 60

--- The delay before retry number `failures` (1 after the first failure): a random value in
--- [d/2, d] where d = min(cap, base * 2^(failures-1)) ("equal jitter": never zero, never more
--- than the cap). `random` is math.random unless a test passes its own.
function Backoff.delay(failures, base, cap, random)
    base = base or Backoff.BASE_S
    cap = cap or Backoff.CAP_S
    random = random or math.random
    local exponent = math.max(0, math.min(failures - 1, 30))
    local ceiling = math.min(cap, base * 2 ^ exponent)
    return ceiling / 2 + random() * ceiling / 2
end

return Backoff
