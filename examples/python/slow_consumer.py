"""A deliberately slow consumer (one record every 50 ms) for the broker's bounded-memory check
in docs/PERFORMANCE.md: `python slow_consumer.py ws://127.0.0.1:19600 90` reads topic `slow`
from the earliest offset for 90 seconds while a producer writes gigabytes."""
import sys, time
import sluice
c = sluice.Consumer(sys.argv[1], ["slow"], auto_offset_reset="earliest")
n = 0
t0 = time.time()
while time.time() - t0 < float(sys.argv[2]):
    r = c.poll(1.0)
    if r is not None:
        n += 1
    time.sleep(0.05)
print("slow consumer read", n, "records", flush=True)
c.close()
