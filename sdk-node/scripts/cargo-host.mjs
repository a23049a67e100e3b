#!/usr/bin/env node
// `napi build` always passes `--target <triple>` to cargo, which puts the build in
// $CARGO_TARGET_DIR/<triple>/ and so compiles every dependency a second time next to the
// workspace's own build in $CARGO_TARGET_DIR/debug/. napi build runs `$CARGO` when it is set:
// this stand-in drops `--target` when it names the host, runs cargo, and places the addon
// where napi build looks for it. Cross builds (another triple) pass through untouched.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const host = /^host: (.+)$/m.exec(spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout)?.[1];
let triple;
const i = args.indexOf('--target');
if (i >= 0 && args[i + 1] === host) {
  triple = args[i + 1];
  args.splice(i, 2);
}
const run = spawnSync('cargo', args, { stdio: 'inherit' });
if (run.status !== 0 || !triple || args[0] !== 'build') process.exit(run.status ?? 1);

const targetDir =
  process.env.CARGO_TARGET_DIR ??
  process.env.CARGO_BUILD_TARGET_DIR ??
  JSON.parse(spawnSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { encoding: 'utf8' }).stdout)
    .target_directory;
const p = args.indexOf('--profile');
const profile = args.includes('--release') ? 'release' : p >= 0 ? args[p + 1] : 'dev';
const dir = profile === 'dev' || profile === 'test' ? 'debug' : profile === 'bench' ? 'release' : profile;
const lib = 'libsluice_node.so';
mkdirSync(join(targetDir, triple, dir), { recursive: true });
copyFileSync(join(targetDir, dir, lib), join(targetDir, triple, dir, lib));
