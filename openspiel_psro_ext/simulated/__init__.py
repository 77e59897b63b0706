"""The simulated layer: batched pyspiel games for games that do not compile."""
