"""Networks shared by the RL oracles: a ReLU MLP (default) and a GRU option.

`Network(obs_shape, out_dim, hidden, kind)` maps observations to `out_dim`
outputs (policy logits, action values or a scalar value):

  kind="mlp": `[B, T] -> ReLU MLP -> Linear -> [B, out_dim]`.
  kind="gru": `[B, L, T]` sequences of the player's observations (oldest
      first, zero-padded at the front) `-> GRU -> last hidden -> ReLU MLP ->
      Linear`. Use it with `observation_sequences`, which gives each
      information state the observation tensors of the player's own decision
      points leading to it, for games whose learner should see observations
      rather than full information-state tensors.

Also: `masked_logits` (illegal actions get a large negative logit), torch
set-up helpers (`resolve_device`, `seed_torch`).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.game_tree import GameTree

NEG_INF = -1e9


def masked_logits(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
  """`logits` with illegal actions (`legal` False) pushed to -1e9."""
  return torch.where(legal, logits, torch.full_like(logits, NEG_INF))


def _mlp(in_dim: int, hidden: Sequence[int]) -> tuple[nn.Sequential, int]:
  layers: list[nn.Module] = []
  for width in hidden:
    layers += [nn.Linear(in_dim, width), nn.ReLU()]
    in_dim = width
  return nn.Sequential(*layers), in_dim


class Network(nn.Module):
  """Observation -> `[B, out_dim]`; see the module doc for `kind`."""

  def __init__(self, obs_shape: Sequence[int], out_dim: int,
               hidden: Sequence[int] = (128, 128), kind: str = "mlp",
               out_scale: float = 1.0):
    super().__init__()
    self.kind = kind
    if kind == "mlp":
      self.gru = None
      self.trunk, width = _mlp(int(np.prod(obs_shape)), hidden)
    elif kind == "gru":
      if len(obs_shape) != 2:
        raise ValueError(f"a GRU network takes [L, T] sequences, got {obs_shape}.")
      self.gru = nn.GRU(obs_shape[-1], hidden[0], batch_first=True)
      self.trunk, width = _mlp(hidden[0], hidden[1:])
    else:
      raise ValueError(f"unknown network kind {kind!r}; use 'mlp' or 'gru'.")
    self.head = nn.Linear(width, out_dim)
    # Small output layer: near-uniform initial policies, near-zero values.
    nn.init.orthogonal_(self.head.weight, out_scale)
    nn.init.zeros_(self.head.bias)

  def forward(self, obs: torch.Tensor) -> torch.Tensor:
    if self.gru is not None:
      _, h = self.gru(obs)
      x = h[-1]
    else:
      x = obs.flatten(1)
    return self.head(self.trunk(x))


def observation_sequences(tree: GameTree, player: int) -> np.ndarray:
  """`[I_p, L, T_obs]` observation tensors at the player's decisions up to each state.

  Row `i` lists the `observation_tensor(player)` of every information state
  of the player on the path to `i` (oldest first, `i` last), zero-padded at the
  front to the deepest level `L`.
  """
  table = tree.infostates[player]
  num_actions = tree.num_actions
  obs = np.asarray([s.observation_tensor(player) for s in table.states],
                   dtype=np.float32)
  length = int(table.level.max()) + 1
  seqs = np.zeros((table.num_infostates, length, obs.shape[1]), dtype=np.float32)
  current = np.arange(table.num_infostates)
  alive = np.ones(table.num_infostates, dtype=bool)
  for pos in range(length - 1, -1, -1):
    rows = np.flatnonzero(alive)
    seqs[rows, pos] = obs[current[rows]]
    parent = table.parent_sequence[current]
    alive &= parent < table.num_sequences
    current = np.where(alive, parent // num_actions, 0)
  return seqs


def resolve_device(device: str) -> torch.device:
  """`torch.device(device)`, falling back to cpu when CUDA is unavailable."""
  if device.startswith("cuda") and not torch.cuda.is_available():
    logging.warning("device %r requested but CUDA is unavailable; using cpu.", device)
    return torch.device("cpu")
  return torch.device(device)


def seed_torch(seed: int, num_threads: int = 0) -> None:
  """Seeds torch; sets its CPU thread count when `num_threads` > 0."""
  torch.manual_seed(seed)
  if num_threads > 0:
    torch.set_num_threads(num_threads)
