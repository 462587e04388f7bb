"""Several processes resume from the one step process 0 chooses.

Two real JAX processes (jax.distributed on localhost, one CPU device each)
resume while seeing different checkpoint directories: each is pointed at its
own copy of a workdir, and process 1's copies differ from process 0's (a newer
step process 0 does not have; an intact step that is damaged in process 0's
copy). Every process must restore process 0's choice, bit for bit, and a
refusal by process 0 must reach process 1 as a refusal, not a hang.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap

from absl.testing import absltest
import jax
import numpy as np

from gan_jax import checkpoint
from gan_jax import train
from gan_jax.config import Config

import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(batch_size=8, z_dim=2, g_hidden=(4,), d_hidden=(4,),
            num_steps=100, log_every=10, keep_checkpoints=10, seed=1)

# Process i of 2: joins the runtime, then for each scenario (workdir of
# process 0, workdir of process 1, config changes) resumes from its own
# workdir and reports the step, the state's fingerprint and what it raised.
RUNNER = textwrap.dedent('''
    import json, sys
    import jax
    process, port, tiny, scenarios = (int(sys.argv[1]), sys.argv[2],
                                      json.loads(sys.argv[3]),
                                      json.loads(sys.argv[4]))
    jax.distributed.initialize(f'localhost:{port}', num_processes=2,
                               process_id=process)
    from gan_jax import checkpoint, train
    from gan_jax.config import Config
    reports = []
    for workdirs, changes in scenarios:
      config = Config(workdir=workdirs[process], **{**tiny, **changes})
      _, _, state = train.build(config)
      warnings = []
      try:
        state, step, damaged = checkpoint.resume(config, state,
                                                 warnings.append)
        reports.append({'step': step, 'damaged': list(damaged),
                        'fingerprint': checkpoint.fingerprint(
                            checkpoint.to_host(state)),
                        'warnings': warnings})
      except Exception as e:
        reports.append({'raised': type(e).__name__, 'message': str(e)})
    print(json.dumps(reports))
''')


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _config(workdir):
  return Config(workdir=workdir, **TINY)


def _save(workdir, state, steps):
  """Checkpoints of `state` at `steps`, each with its own parameters."""
  writer = checkpoint.Checkpointer(workdir, keep=10)
  for step in steps:
    writer.save(state.replace(
        step=np.int32(step),
        g_params=jax.tree.map(lambda x: x + step, state.g_params)),
                _config(workdir))
  writer.close()


def _recorded(workdir, step):
  path = os.path.join(workdir, 'checkpoints', str(step), 'meta', 'metadata')
  with open(path) as f:
    return json.load(f)['fingerprint']


class TwoProcessResumeTest(absltest.TestCase):

  def test_every_process_restores_the_step_process_0_chose(self):
    tmp = self.create_tempdir().full_path
    dirs = {name: os.path.join(tmp, name) for name in
            ('p0', 'p1_newer', 'p0_damaged', 'p1_intact')}
    _, _, state = train.build(_config(dirs['p0']))
    state = checkpoint.to_host(state)
    _save(dirs['p0'], state, [20, 40])
    shutil.copytree(dirs['p0'], dirs['p1_newer'])
    _save(dirs['p1_newer'], state, [60])  # only process 1 sees step 60
    shutil.copytree(dirs['p1_newer'], dirs['p1_intact'])
    shutil.copytree(dirs['p1_newer'], dirs['p0_damaged'])
    os.remove(os.path.join(dirs['p0_damaged'], 'checkpoints', '60', 'meta',
                           'metadata'))  # damaged where process 0 reads it
    scenarios = [
        [[dirs['p0'], dirs['p1_newer']], {}],
        [[dirs['p0_damaged'], dirs['p1_intact']], {}],
        [[dirs['p0'], dirs['p1_newer']], {'g_lr': 0.5}],
        [[dirs['p0'], dirs['p1_newer']], {'num_steps': 30}],
    ]
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, '-c', RUNNER, str(i), str(port), json.dumps(
            {k: list(v) if isinstance(v, tuple) else v
             for k, v in TINY.items()}), json.dumps(scenarios)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=subprocess_env.env(PYTHONPATH=ROOT)) for i in range(2)]
    try:
      outs = [p.communicate(timeout=120) for p in procs]
    finally:
      for p in procs:
        p.kill()
    for p, (_, err) in zip(procs, outs):
      self.assertEqual(p.returncode, 0, err)
    p0, p1 = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)

    # Process 1 sees a newer step 60; both restore process 0's step 40.
    self.assertEqual((p0[0]['step'], p1[0]['step']), (40, 40))
    self.assertEqual(p0[0]['fingerprint'], _recorded(dirs['p0'], 40))
    self.assertEqual(p1[0]['fingerprint'], p0[0]['fingerprint'])
    self.assertEqual(p0[0]['warnings'] + p1[0]['warnings'], [])

    # Step 60 is damaged for process 0 only: process 0 warns and falls back
    # to 40 (and will move its 60 aside); process 1 restores 40 too.
    self.assertEqual((p0[1]['step'], p0[1]['damaged']), (40, [60]))
    self.assertLen(p0[1]['warnings'], 1)
    self.assertIn("metadata not found", p0[1]["warnings"][0])
    self.assertEqual((p1[1]['step'], p1[1]['damaged']), (40, []))
    self.assertEqual(p1[1]['fingerprint'], p0[0]['fingerprint'])

    # Refusals by process 0 (another config; past --num_steps) reach process
    # 1 as refusals.
    for p0_report, p1_report, says in ((p0[2], p1[2], '--g_lr=0.0001 there '
                                        'vs 0.5 here'),
                                       (p0[3], p1[3], '--num_steps=30 is less '
                                        'than step 40')):
      self.assertEqual(p0_report['raised'], 'ResumeRefused')
      self.assertIn(says, p0_report['message'])
      self.assertEqual(p1_report['raised'], 'ResumeRefused')
      self.assertIn('process 0 refused', p1_report['message'])


if __name__ == '__main__':
  absltest.main()
