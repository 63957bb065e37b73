"""A backend outside weightpack: a linear layer's weights as ``weights.npz``, run with numpy."""
