# Producer/consumer over threading.Condition: deterministic output.
import threading

N_ITEMS, N_CONSUMERS = 20000, 3
buf, done = [], [False]
cond = threading.Condition()
totals = [0] * N_CONSUMERS

def producer():
    for i in range(N_ITEMS):
        with cond:
            while len(buf) >= 16:
                cond.wait()
            buf.append(i)
            cond.notify_all()
    with cond:
        done[0] = True
        cond.notify_all()

def consumer(k):
    while True:
        with cond:
            while not buf and not done[0]:
                cond.wait(timeout=1.0)
            if not buf and done[0]:
                return
            totals[k] += buf.pop(0)
            cond.notify_all()

threads = [threading.Thread(target=consumer, args=(k,)) for k in range(N_CONSUMERS)]
threads.append(threading.Thread(target=producer))
for t in threads:
    t.start()
for t in threads:
    t.join()
print("sum", sum(totals), "expected", N_ITEMS * (N_ITEMS - 1) // 2)
