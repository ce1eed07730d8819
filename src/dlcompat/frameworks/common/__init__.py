"""What every framework adapter needs and no framework provides: written once, NumPy only (it loads in every
toolchain environment, the Theano one included)."""
