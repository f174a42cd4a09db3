// `sedna-ll kb ...`: the cloud knowledge base. Each sub-area registers its own subcommands.
import type { Command } from 'commander';
import * as server from './kb-server.js';
import * as device from './kb-device.js';
import * as samples from './kb-samples.js';
import * as task from './kb-task.js';
import * as publish from './kb-publish.js';
import * as learn from './kb-learn.js';
import * as fleet from './kb-fleet.js';
import * as gc from './kb-gc.js';
import * as keys from './kb-keys.js';
import { addStoreOptions } from './kb-common.js';

export function register(program: Command): void {
  const kb = program.command('kb').description('cloud knowledge base: server, devices, samples, tasks, training, rollout');
  for (const m of [server, device, samples, task, publish, learn, fleet, gc, keys]) m.register(kb);
  addStoreOptions(kb);
}
