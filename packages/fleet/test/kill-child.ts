// Runs one fleet verb in its own process for kill.test.ts; with `killAt` it SIGKILLs itself at that
// step (no catch, no finally, no rollback runs: what a kill -9 or the OOM killer leaves).
import { childrenDieWithUs, execFileRunner, type CommandRunner } from '@iot-tofu/host-io';
import { Fleet, type FleetOptions, type FleetStep } from '../src/index.js';

interface Job {
  options: Omit<FleetOptions, 'runner' | 'isRoot' | 'beforeStep'>;
  verb: 'setup' | 'add' | 'remove';
  base: { boot: string; root: string };
  serial: string;
  killAt?: FleetStep;
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const real = childrenDieWithUs(execFileRunner);
// exportfs would touch this machine's NFS state: the exports file is a temp file, the reload a no-op.
const runner: CommandRunner = (file, args, options) =>
  file === 'exportfs' ? Promise.resolve({ stdout: '', stderr: '' }) : real(file, args, options);
const fleet = await Fleet.open({
  ...job.options,
  runner,
  isRoot: () => true,
  beforeStep: (step) => {
    process.stdout.write(`step ${step}\n`);
    if (step === job.killAt) process.kill(process.pid, 'SIGKILL');
  },
});
if (job.verb === 'setup') await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: job.base.boot, root: job.base.root } });
// With a docker disk: its image is made in the temp tree, so a kill must leave none of it either.
else if (job.verb === 'add') await fleet.add({ serial: job.serial, owner: 'jo', name: 'pi', base: 'lite', dockerDisk: '32M' });
else await fleet.remove(job.serial);
process.stdout.write('done\n');
await fleet.close();
