// Starts the real `cfrec serve` on a log that `cfrec synth` generates, for the
// tests of this folder. The service listens on a free loopback port and
// replays the log into its embedded broker.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

// --name value pairs of process.argv.
function parseArgs(names) {
  const out = {};
  for (let i = 2; i < process.argv.length; i += 2) {
    const name = process.argv[i].replace(/^--/, '');
    if (!names.includes(name)) throw new Error('unknown argument ' + process.argv[i]);
    out[name] = process.argv[i + 1];
  }
  for (const n of names) if (!(n in out)) throw new Error('missing --' + n);
  return out;
}

async function until(what, deadlineMs, fn) {
  const deadline = Date.now() + deadlineMs;
  let last = null;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error('timed out waiting for ' + what + (last ? ': ' + last.message : ''));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// The user with the most lists in a MIND-format behaviors.tsv (column 2).
function busiestUser(tsv) {
  const counts = new Map();
  for (const line of fs.readFileSync(tsv, 'utf8').split('\n')) {
    const user = line.split('\t')[1];
    if (user) counts.set(user, (counts.get(user) || 0) + 1);
  }
  let best = null;
  for (const [user, n] of counts) if (best === null || n > counts.get(best)) best = user;
  return best;
}

// Generates the log, starts the service and resolves once it answers
// GET /v1/model. Returns {url, user, stop(), log()}.
async function startService(cfrec, workDir) {
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  const dataDir = path.join(workDir, 'log');
  childProcess.execFileSync(cfrec, ['synth', '--mode', 'news', '--seed', '7',
    '--impressions', '6000', '--days', '1', '--out', dataDir], { stdio: 'ignore' });
  const tsv = path.join(dataDir, 'behaviors.tsv');
  let output = '';
  const child = childProcess.spawn(cfrec, ['serve', '--http', '127.0.0.1:0',
    '--data-dir', path.join(workDir, 'state'), '--replay', tsv,
    '--replay-speed', '2000', '--click-delay', '30', '--intervention', 'learned'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code: code, signal: signal }; });
  const collect = (chunk) => { output += chunk.toString(); };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      await until('cfrec serve to stop', 60000, () => exited !== null);
    }
    return exited;
  };
  try {
    const port = await until('the HTTP port in the log', 60000, () => {
      if (exited !== null) throw new Error('cfrec serve exited: ' + output);
      const m = /HTTP on 127\.0\.0\.1:(\d+)/.exec(output);
      return m ? m[1] : null;
    });
    const url = 'http://127.0.0.1:' + port;
    await until('a first model snapshot', 60000, async () => (await fetch(url + '/v1/model')).ok);
    return { url: url, user: busiestUser(tsv), stop: stop, log: () => output };
  } catch (e) {
    await stop();
    throw e;
  }
}

module.exports = { parseArgs, until, startService };
