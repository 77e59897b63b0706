"""Networks shared by the RL oracles: a ReLU MLP, a Conv2D torso, GRU and LSTM.

`Network(obs_shape, out_dim, hidden, kind)` maps observations to `out_dim`
outputs (policy logits, action values or a scalar value):

  kind="mlp": `[B, T] -> ReLU MLP -> Linear -> [B, out_dim]`.
  kind="conv": `[B, C, H, W]` spatial observations (a board's planes) `->
      conv_layers x (Conv2d 3x3, padding 1, conv_channels; ReLU) -> flatten
      [B, conv_channels H W] -> ReLU MLP -> Linear`. The padding keeps the
      board's `H x W`, so every cell's features see its neighbours and the
      heads see every cell; the weights are shared across the board, so a
      pattern learned in one place is recognised in another. With
      `hidden=()` the heads are linear over the conv features.
  kind="auto": conv where the observation has three dimensions `[C, H, W]`,
      mlp elsewhere (`resolve_kind`); a module records the kind it resolved to.
  kind="gru": `[B, L, T]` sequences of the player's observations (oldest
      first, zero-padded at the front) `-> GRU -> last hidden -> ReLU MLP ->
      Linear`. Use it with `observation_sequences`, which gives each
      information state the observation tensors of the player's own decision
      points leading to it, for games whose learner should see observations
      rather than full information-state tensors.
  kind="lstm": the same with an LSTM (last hidden state `h`, not the cell).

The recurrent state is carried over the learner's own decisions in an
episode: at its `k`-th decision the network has read the observations of its
decisions `1..k`, oldest first. The rows are zero-padded at the front, so the
recurrence starts from the state reached from zero on `L - k` zero inputs (a
constant, learned like any bias). In a perfect-recall game an information
state determines that sequence, so one batched pass over all information
states' sequences gives the exact behaviour matrix, and
`TorchPolicy.action_probabilities` (which rebuilds the sequence from the
history) gives the same numbers step by step.

`batch_renorm=True` (CrossQ's critics) puts a `BatchRenorm` on the MLP's input
and after each hidden layer's ReLU.

Also: `masked_logits` (illegal actions get a large negative logit), torch
set-up helpers (`resolve_device`, `seed_torch`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.game.game_tree import GameTree

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


def _conv(obs_shape: Sequence[int], channels: int, layers: int) -> tuple[nn.Sequential, int]:
  """Size-keeping 3x3 convolutions over `[C, H, W]`, flattened at the end."""
  in_channels, height, width = (int(d) for d in obs_shape)
  modules: list[nn.Module] = []
  for _ in range(layers):
    modules += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU()]
    in_channels = channels
  modules.append(nn.Flatten())
  return nn.Sequential(*modules), in_channels * height * width


RECURRENT = {"gru": nn.GRU, "lstm": nn.LSTM}
AUTO = "auto"
KINDS = ("mlp", "conv") + tuple(RECURRENT)


def resolve_kind(kind: str, obs_shape: Sequence[int]) -> str:
  """`kind`, with "auto" read as "conv" for `[C, H, W]` observations, else "mlp"."""
  if kind != AUTO:
    return kind
  return "conv" if len(obs_shape) == 3 else "mlp"


class BatchRenorm(nn.Module):
  """Batch renormalisation (Ioffe, 2017) of `[B, D]` features.

  Training: with batch mean/std `mu_B, sigma_B` and running `mu, sigma`,

      x_hat = (x - mu_B) / sigma_B * r + d,
      r = clip(sigma_B / sigma, 1/r_max, r_max),  d = clip((mu_B - mu) / sigma, +-d_max),

  `r, d` held constant (no gradient), then `gamma x_hat + beta`; the running
  statistics move by `momentum`. For the first `warmup_steps` training calls
  `r = 1, d = 0` (plain batch norm) while the running statistics settle.
  Evaluation uses the running statistics. Unlike batch norm, training and
  evaluation outputs agree once the running statistics are accurate, which
  is what lets CrossQ's actor read a critic trained in training mode.
  """

  # Buffers (registered in `__init__`).
  running_mean: torch.Tensor
  running_std: torch.Tensor
  steps: torch.Tensor

  def __init__(
    self,
    dim: int,
    momentum: float = 0.01,
    r_max: float = 3.0,
    d_max: float = 5.0,
    warmup_steps: int = 1000,
    eps: float = 1e-3,
  ):
    super().__init__()
    self.momentum, self.r_max, self.d_max = momentum, r_max, d_max
    self.warmup_steps, self.eps = warmup_steps, eps
    self.weight = nn.Parameter(torch.ones(dim))
    self.bias = nn.Parameter(torch.zeros(dim))
    self.register_buffer("running_mean", torch.zeros(dim))
    self.register_buffer("running_std", torch.ones(dim))
    self.register_buffer("steps", torch.zeros((), dtype=torch.long))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.training:
      return (x - self.running_mean) / self.running_std * self.weight + self.bias
    with torch.no_grad():
      # Two plain passes: torch.var_mean's CPU kernel is slower on these
      # small batches, and this runs on every critic step.
      mean = x.mean(0)
      var = (x - mean).square().mean(0)
      std = (var + self.eps).sqrt()
      if int(self.steps) >= self.warmup_steps:
        r = (std / self.running_std).clamp(1 / self.r_max, self.r_max)
        d = ((mean - self.running_mean) / self.running_std).clamp(-self.d_max, self.d_max)
      else:
        r, d = torch.ones_like(std), torch.zeros_like(mean)
      self.running_mean.lerp_(mean, self.momentum)
      self.running_std.lerp_(std, self.momentum)
      self.steps += 1
    # (x_hat r + d) gamma + beta with batch statistics (their gradients
    # included): one fused batch-norm call with scale r gamma, shift d gamma + beta.
    return nn.functional.batch_norm(
      x, None, None, r * self.weight, d * self.weight + self.bias, True, 0.0, self.eps
    )


def _mlp_renorm(in_dim: int, hidden: Sequence[int], warmup_steps: int) -> tuple[nn.Sequential, int]:
  layers: list[nn.Module] = [BatchRenorm(in_dim, warmup_steps=warmup_steps)]
  for width in hidden:
    layers += [nn.Linear(in_dim, width), nn.ReLU(), BatchRenorm(width, warmup_steps=warmup_steps)]
    in_dim = width
  return nn.Sequential(*layers), in_dim


class Network(nn.Module):
  """Observation -> `[B, out_dim]`; see the module doc for `kind`."""

  def __init__(
    self,
    obs_shape: Sequence[int],
    out_dim: int,
    hidden: Sequence[int] = (128, 128),
    kind: str = "mlp",
    out_scale: float = 1.0,
    batch_renorm: bool = False,
    renorm_warmup_steps: int = 1000,
    conv_channels: int = 32,
    conv_layers: int = 2,
  ):
    super().__init__()
    self.kind = kind = resolve_kind(kind, obs_shape)
    self.obs_shape = tuple(int(d) for d in obs_shape)
    if kind not in KINDS:
      raise ValueError(f"unknown network kind {kind!r}; use one of {KINDS + (AUTO,)}.")
    if kind == "mlp":
      in_dim, widths = int(np.prod(obs_shape)), hidden
    elif kind == "conv":
      if len(obs_shape) != 3 or conv_channels < 1 or conv_layers < 1:
        raise ValueError(
          f"a conv network takes [C, H, W] observations with conv_channels and"
          f" conv_layers >= 1; got {list(obs_shape)}, {conv_channels}, {conv_layers}."
        )
      self.conv, in_dim = _conv(obs_shape, conv_channels, conv_layers)
      widths = hidden
    else:
      if len(obs_shape) != 2:
        raise ValueError(
          f"a {kind.upper()} network takes [L, T] sequences, got"
          f" {list(obs_shape)}; set obs_type='observation_sequence'."
        )
      # Registered under its kind's name ("gru", "lstm"): checkpoint keys.
      setattr(self, kind, RECURRENT[kind](obs_shape[-1], hidden[0], batch_first=True))
      in_dim, widths = hidden[0], hidden[1:]
    self.trunk, width = (
      _mlp_renorm(in_dim, widths, renorm_warmup_steps) if batch_renorm else _mlp(in_dim, widths)
    )
    self.head = nn.Linear(width, out_dim)
    # Small output layer: near-uniform initial policies, near-zero values.
    nn.init.orthogonal_(self.head.weight, out_scale)
    nn.init.zeros_(self.head.bias)

  def forward(self, obs: torch.Tensor) -> torch.Tensor:
    if self.kind == "mlp":
      x = obs.flatten(1)
    elif self.kind == "conv":
      # Flat `[B, C*H*W]` rows too (a simulator's tensors): the planes are C-major.
      x = self.conv(obs.reshape((-1,) + self.obs_shape))
    else:
      _, state = getattr(self, self.kind)(obs)
      h = state[0] if self.kind == "lstm" else state  # LSTM: (h, cell)
      x = h[-1]
    return self.head(self.trunk(x))


def observation_sequences(tree: GameTree, player: int) -> np.ndarray:
  """`[I_p, L, T_obs]` observation tensors at the player's decisions up to each state.

  Row `i` lists the `observation_tensor(player)` of every information state
  of the player on the path to `i` (oldest first, `i` last), zero-padded at the
  front to the deepest level `L`.
  """
  table = tree.infostates[player]
  num_actions = tree.num_actions
  obs = np.asarray([s.observation_tensor(player) for s in table.states], dtype=np.float32)
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
