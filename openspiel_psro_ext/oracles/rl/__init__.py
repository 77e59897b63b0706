"""Deep RL best-response oracles in PyTorch, one file per algorithm."""
