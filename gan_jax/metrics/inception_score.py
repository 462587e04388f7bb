"""Inception Score from a classifier's logits.

Salimans et al. 2016 ("Improved techniques for training GANs", Sec. 4): with
p(y|x) the classifier's softmax for sample x and p(y) = E_x p(y|x) its
marginal over the samples,

    IS = exp( E_x KL(p(y|x) || p(y)) ).

IS lies in [1, K] for K classes: 1 when every sample gets the same
distribution, K when each sample is classified with certainty and the
classes are used equally. As in the original code, the samples are split
into `num_splits` consecutive parts, IS is computed on each with that part's
own marginal, and the mean and standard deviation (ddof=0) over the parts are
reported. Everything is float64; log p(y|x) is a log-softmax, so confident
logits give no log 0.
"""

from __future__ import annotations

import numpy as np
import scipy.special


def inception_score(logits: np.ndarray, num_splits: int = 10) -> dict:
  """IS of logits (n, K): {'is_mean', 'is_std', 'is_splits'}.

  Example:
    >>> eye = 50.0 * np.eye(4)           # 4 samples, each a certain class
    >>> round(inception_score(eye, num_splits=1)['is_mean'], 6)
    4.0
  """
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2:
    raise ValueError(f'logits must have shape (n, classes), got {logits.shape}')
  if not 1 <= num_splits <= len(logits):
    raise ValueError(f'num_splits={num_splits} must lie in [1, {len(logits)}] '
                     'for these logits')
  log_p = scipy.special.log_softmax(logits, axis=1)
  scores = []
  for part in np.array_split(log_p, num_splits):
    log_marginal = scipy.special.logsumexp(part, axis=0) - np.log(len(part))
    kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
    scores.append(np.exp(kl.mean()))
  scores = np.asarray(scores)
  return {'is_mean': float(scores.mean()), 'is_std': float(scores.std()),
          'is_splits': int(num_splits)}
