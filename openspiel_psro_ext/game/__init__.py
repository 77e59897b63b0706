"""The game layer: a pyspiel game compiled into arrays, and the exact maths on it."""
