"""gan_jax: generative adversarial networks as one value function V(D, G) in JAX."""

__version__ = '0.1.0'
