"""`python -m gan_jax.report`: regenerates experiments/RESULTS.md.

The report lives in `gan_jax.analysis.report` (see its docstring); this
command runs it with the same flags.
"""

from absl import flags

from gan_jax.analysis import report

flags.adopt_module_key_flags(report)

if __name__ == '__main__':
  report.run()
