"""Reading runs, never training them.

    results  a sweep's finished configurations: rows, mean ± std, tables
    figures  sweep figures, composed of `gan_jax.plots`' primitives
    report   experiments/RESULTS.md (`python -m gan_jax.analysis.report`)
"""
