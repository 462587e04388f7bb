"""`python -m gan_jax.report`: regenerates experiments/RESULTS.md.

The report lives in `gan_jax.analysis.report`; this command runs it.
"""

if __name__ == '__main__':
  from gan_jax.analysis import report  # pylint: disable=g-import-not-at-top
  report.run()
