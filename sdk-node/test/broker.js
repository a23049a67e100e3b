// Starts the real `sluice` binary ($SLUICE_BIN) on port 0 in a temporary data directory, and
// reads the address it prints: "sluice listening on http://127.0.0.1:PORT".
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export function sluiceBin() {
  const bin = process.env.SLUICE_BIN;
  if (!bin) throw new Error('set SLUICE_BIN to the sluice binary (cargo build -p sluice-server --bin sluice)');
  return bin;
}

/** A running broker: `url`, and `stop()`. */
export async function startBroker(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-node-'));
  const child = spawn(
    sluiceBin(),
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...extraArgs],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // A test process that dies early must not leave its broker behind.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`sluice exited (${code}) before listening`));
    child.once('exit', onExit);
    child.once('error', reject);
    lines.on('line', (line) => {
      const m = /^sluice listening on (http:\/\/\S+)/.exec(line);
      if (m) {
        child.off('exit', onExit);
        resolve(m[1]);
      }
    });
  });
  // Keep draining stdout (the readline interface does) so the broker never blocks on it.
  let stopped = false;
  return {
    url,
    child,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', kill);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A topic name unique within this process. */
let n = 0;
export function topicName(prefix = 't') {
  n += 1;
  return `${prefix}-${process.pid}-${n}`;
}
