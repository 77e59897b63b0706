"""NeuPL (Liu et al., ICLR 2022): one conditional network per population, evaluated exactly.

PSRO's members are separate networks, each trained from scratch. NeuPL keeps
one network per population, `pi_theta(a | o, c)`, and member i is that network
told `c_i`: the i-th row of the interaction graph `Sigma` padded to
`max_population` (the mixture over the opponent's members that member i
best-responds to) and i's one-hot index (`PopulationGraph.conditions`).
Member 0 is the uniform policy every run starts from (a fixed seed, as in
PSRO: its row is `e_0` and never trains). A meta-graph
solver (`GRAPH_SOLVERS`) fills `Sigma` from the payoff table; PSRO-Nash's row
i is the restricted game's Nash over members `< i` (the opponent's part), so
member i is PSRO's i-th best response, and all of them train at once.

Each iteration, with N members per population:

  1. `meta_solve`: every member's `[I_p, A]` matrix from its network at its
     condition (one batched pass per population), and the payoff table
     recomputed from them (the members change whenever the shared network
     trains: two matrix products over the compiled tree); the solver fills
     `Sigma`'s rows 1..N (row N is the new member's) from `sigma`, the
     meta-solver's Nash of the whole table and of the tables restricted to
     members `< i`;
  2. `output` (`NeuPLOptions.output`): the least exploitable mixture of each
     population's members, exactly (`LeastExploitableLP`, the default: the
     tree is there, and the restricted Nash is one of the mixtures it
     weighs), or `sigma` itself as in the paper; with its exact NashConv;
  3. `requests`: one per population (`base.ConditionedMixtures`): the network
     trains rows 1..N at once against the opponent's current members
     (`oracles.rl.neupl`, `--oracle=neupl`), the new row with
     `new_row_share` of the episodes, the old members' rows anchored near
     their current answers; with Simplex-NeuPL (`simplex_rows`),
     also rows told mixtures sampled from a Dirichlet over the opponent's
     members, so the network answers mixtures no member has;
  4. `accept`: the trained networks replace the old; member N, the network
     at row N, joins each population. Its exact best-response gain against
     its row, and with `held_out` the network's exact gain at held-out
     mixtures relative to an exact best response's, go in the record's
     `NeuPLState`.

A record describes the members as step 1 left them (the networks before that
iteration's training), so the recorded NashConv is that of the matrices
`verify` checks with OpenSpiel.

Checkpoints: one `TorchPolicy` state_dict per population and `Sigma` per
population (`.npy`), in `neupl/step<NNNNN>/` named by the records the commit
completes (the previous step's directory is kept too: it holds the networks
the last record describes, for `load_run`). The loop still writes each
member's matrix when it joins (a placeholder: members are recomputed). On
resume, `restore` loads both directories; the loop's replayed meta-solves
give back the records' training meta-strategies, and the last of them recomputes the
members the last record describes, so the run goes on bit for bit.
"""

from __future__ import annotations

import abc
import dataclasses
import shutil
from typing import ClassVar

import numpy as np

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.meta_solvers.least_exploitable import LeastExploitableLP
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.oracles.rl import neupl as learner
from openspiel_psro_ext.oracles.rl.neupl import PopulationGraph
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records import IterationRecord, schema
from openspiel_psro_ext.records.variants import NeuPLState
from openspiel_psro_ext.runs import neupl as graph_files

_SIMPLEX_SEED_TAG = 23
_HELD_OUT_SEED_TAG = 29


class GraphSolver(abc.ABC):
  """A meta-graph solver: the interaction graph from the payoff table."""

  name: ClassVar[str]

  @abc.abstractmethod
  def solve(self, run: base.Run, sigma: list[np.ndarray]) -> list[np.ndarray]:
    """Per population `[N + 1, N]` `Sigma` for the run's N members and the
    next one: row i is member i's mixture over the opponent's members.

    `sigma` is the meta-solver's profile of the whole table (this
    iteration's meta-strategy)."""


class PSRONash(GraphSolver):
  """Row i: the opponent's part of the Nash of the game restricted to members `< i`."""

  name = "psro_nash"

  def solve(self, run: base.Run, sigma: list[np.ndarray]) -> list[np.ndarray]:
    meta_games, n = run.table.meta_games, len(sigma[0])
    # The warm-started solver state belongs to the whole table's solves.
    kwargs = {k: v for k, v in run.solver_kwargs.items() if k != "incremental"}
    graphs = [np.zeros((n + 1, n)) for _ in range(2)]
    for graph in graphs:
      graph[0, 0] = 1.0  # the seed member; never trained
    for i in range(1, n + 1):
      profile = (
        sigma if i == n else run.meta_solver.solve([m[:i, :i] for m in meta_games], **kwargs)
      )
      for p in range(2):
        graphs[p][i, :i] = profile[1 - p]
    return graphs


GRAPH_SOLVERS: dict[str, type[GraphSolver]] = {cls.name: cls for cls in (PSRONash,)}


OUTPUTS = ("least_exploitable", "nash")


@dataclasses.dataclass(frozen=True)
class NeuPLOptions:
  """NeuPL's settings (module doc).

  Attributes:
    graph_solver: the meta-graph solver (`GRAPH_SOLVERS`).
    max_population: N_max, the conditions' width: the network's input does
      not grow with the population; the run stops when it is full.
    new_row_share: the share of the learner's episodes on the new member's
      row (the rest is spread evenly over the other rows).
    output: "least_exploitable" or "nash" (module doc, step 2).
    simplex_rows: Simplex-NeuPL: rows told Dirichlet-sampled mixtures, per
      iteration (0: off).
    held_out: held-out mixtures at which each record reports the network's
      exact best-response gain (0: none).
    dirichlet: the sampled and held-out mixtures' Dirichlet concentration.
  """

  graph_solver: str = schema.setting("psro_nash", choices=sorted(GRAPH_SOLVERS))
  max_population: int = schema.setting(256, min=2)
  new_row_share: float = schema.setting(0.5, above=0, max=1)
  simplex_rows: int = schema.setting(0, min=0)
  held_out: int = schema.setting(0, min=0)
  dirichlet: float = schema.setting(1.0, above=0)
  output: str = schema.setting("least_exploitable", choices=OUTPUTS)

  def check(self) -> None:
    """Nothing depends on another value."""


class NeuPL(base.Variant):
  """NeuPL (module doc); `options` a `NeuPLOptions`."""

  name = "neupl"
  title = "NeuPL"
  Options = NeuPLOptions
  options: NeuPLOptions

  def __init__(self, options: NeuPLOptions | None = None):
    super().__init__(options)
    self.solver = GRAPH_SOLVERS[self.options.graph_solver]()
    self.graph = PopulationGraph([None, None], [np.ones((1, 1)), np.ones((1, 1))])
    self._recorded: PopulationGraph | None = None  # restore: what the last record describes
    self._replay: list[IterationRecord] = []
    self._state: NeuPLState | None = None

  def check(self, config: PSROConfig, view: views.View) -> None:
    base.check_two_player_zero_sum(self.title, config, view)
    if config.oracle != learner.NeuPLOracle.name:
      raise UsageError(
        "NeuPL trains one conditional network per population: run it with"
        f" --oracle={learner.NeuPLOracle.name} (its settings in --oracle_config)."
      )
    if config.sims_per_entry:
      raise UsageError("NeuPL recomputes the whole payoff table exactly; drop --sims_per_entry.")

  # -- the members -----------------------------------------------------------

  def conditions(
    self, population: int, rows: np.ndarray | None = None, members: np.ndarray | None = None
  ) -> np.ndarray:
    """`[M, 2 N_max]` the rows of `Sigma` (or `rows`, members `members`) as
    the network is told them (`PopulationGraph.conditions`)."""
    return self.graph.conditions(population, self.options.max_population, rows, members)

  def _refresh(self, graph: PopulationGraph) -> None:
    """Members 1.. of each population from `graph`, and the payoff table
    recomputed from every member (module doc, step 1)."""
    run, tree = self.run, self.tree
    for p, network in enumerate(graph.networks):
      members = run.populations[p][1:]
      if not members or network is None:
        continue
      told = graph.conditions(p, self.options.max_population)[1 : len(members) + 1]
      for member, matrix, condition in zip(
        members, learner.member_matrices(network, tree, told), told
      ):
        member.matrix, member.module = matrix, learner.ConditionalMember(network, condition)
    # A fresh table of every member: the old entries describe old networks.
    view = views.CompiledView(tree, len(run.populations))
    view.add(run.populations, seed=0)
    run.view = view

  def meta_solve(self) -> list[np.ndarray]:
    run = self.run
    if len(run.records) < len(self._replay):  # the loop replays a resumed run
      replayed = len(run.populations[0]) - 1
      if replayed == len(self._replay) - 1 and self._recorded is not None:
        self._refresh(self._recorded)
      record = self._replay[replayed]
      return [np.asarray(s) for s in record.training_meta_strategy or record.meta_strategy]
    self._replay = []
    self._refresh(self.graph)
    sigma = base.restricted_nash(run)
    self.graph.sigma = self.solver.solve(run, sigma)
    return sigma

  def output(self, sigma):
    if self.options.output == "nash":
      return super().output(sigma)
    tree, matrices = self.tree, self.run.population_matrices()
    mixtures = []
    for p in range(2):
      program = LeastExploitableLP(tree, p)
      program.add(tree.terminal_reach(p, matrices[p]))
      mixtures.append(program.solve()[0])
    return mixtures, self.run.view.nash_conv(mixtures)

  # -- training --------------------------------------------------------------

  def _simplex(self, size: int, count: int, tag: int) -> np.ndarray:
    """`[count, size]` Dirichlet mixtures, seeded by (seed, tag, iteration)."""
    rng = np.random.default_rng([self.run.config.seed, tag, self.run.iteration])
    return rng.dirichlet(np.full(size, self.options.dirichlet), size=count)

  def requests(self, sigma):
    run, n = self.run, len(sigma[0])
    matrices = run.population_matrices()
    sampled = self._simplex(n, self.options.simplex_rows, _SIMPLEX_SEED_TAG)
    requests = []
    for p in range(2):
      # Sampled rows first: the learner's result is its last row's member (N's).
      rows = np.concatenate([sampled, self.graph.sigma[p][1:]])
      share = np.full(len(rows), (1.0 - self.options.new_row_share) / max(len(rows) - 1, 1))
      share[-1] = self.options.new_row_share if len(rows) > 1 else 1.0
      weights: list[np.ndarray | None] = base.against(p, [rows, rows])
      # The members' rows (not the sampled ones, nor the new member's).
      anchored = np.zeros(len(rows), dtype=bool)
      anchored[len(sampled) : -1] = True
      opponents = oracle_base.ConditionedMixtures(
        base.against(p, matrices),
        weights,
        self.conditions(p, rows, np.append(np.full(len(sampled), -1), np.arange(1, n + 1))),
        share / share.sum(),
        anchored,
      )
      network = self.graph.networks[p]
      previous = (
        None
        if network is None
        else oracle_base.PopulationMember(
          matrix=None, module=learner.ConditionalMember(network, self.conditions(p)[-1])
        )
      )
      plan = oracle_base.TrainingPlan(continues=network is not None)
      requests.append((p, run.request(p, opponents, 0, previous, plan)))
    return requests

  def accept(self, requests, members):
    run = self.run
    new: base.Members = [[] for _ in range(2)]
    gains, episodes = [], []
    for (p, _), member in zip(requests, members):
      assert isinstance(member.module, learner.ConditionalMember)
      self.graph.networks[p] = member.module.network
      new[p].append(member)
      mixture = self.graph.sigma[p][-1]
      gains.append(float(self._gain(p, base.matrix(member)[None], mixture)[0]))
      episodes.append(int(member.stats.get("episodes", 0)))
    self._state = NeuPLState(
      new_row=[self.graph.sigma[p][-1].tolist() for p in range(2)],
      rows_trained=len(self.graph.sigma[0]) - 1 + self.options.simplex_rows,
      episodes=episodes,
      new_member_gain=gains,
      held_out_gain_ratio=self._held_out_ratio() if self.options.held_out else None,
    )
    self._write(run.iteration + 1)
    return new

  def _gain(self, player: int, matrices: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """`[K]` exact best-response gains of `[K, I_p, A]` policies against the
    opponent's `[N]` mixture of its current members."""
    tree = self.tree
    opponent_reach = mixture @ self.run.table.terminal_reach(1 - player)[: len(mixture)]
    payoff = tree.terminal_chance_reach * opponent_reach * tree.terminal_returns[:, player]
    best, _ = exploitability.best_response_from_weights(tree, player, payoff)
    return float(best) - tree.terminal_reach(player, matrices) @ payoff

  def _held_out_ratio(self) -> list[float]:
    """Per population, the median over held-out mixtures of the network's
    gain over the uniform member, relative to an exact best response's."""
    n = len(self.graph.sigma[0]) - 1
    held_out = self._simplex(n, self.options.held_out, _HELD_OUT_SEED_TAG)
    ratios = []
    for p, network in enumerate(self.graph.networks):
      assert network is not None
      told = learner.member_matrices(network, self.tree, self.conditions(p, held_out))
      uniform = self.tree.infostates[p].uniform_policy()[None]
      ratio = [
        1.0 - self._gain(p, m[None], w)[0] / max(self._gain(p, uniform, w)[0], 1e-12)
        for m, w in zip(told, held_out)
      ]
      ratios.append(float(np.median(ratio)))
    return ratios

  def state(self) -> NeuPLState | None:
    return self._state

  def stop(self) -> str | None:
    full = len(self.run.populations[0]) >= self.options.max_population
    return "max_population" if full else None

  # -- checkpoints -----------------------------------------------------------

  def _write(self, records_done: int) -> None:
    """The networks and `Sigma` as the commit of `records_done` leaves them."""
    run_dir = self.run.run_dir
    if run_dir is None:
      return
    path = learner.graph_dir(run_dir.path, records_done)
    shutil.rmtree(path, ignore_errors=True)  # an uncommitted try of this step
    graph_files.write(path, self.graph)
    if records_done >= 3:  # keep this step's and the last two commits'
      shutil.rmtree(learner.graph_dir(run_dir.path, records_done - 3), ignore_errors=True)

  def restore(self, records: list[IterationRecord]) -> None:
    """The networks and `Sigma` of the last commit, and those its last
    record describes (the previous commit's)."""
    run_dir = self.run.run_dir
    if run_dir is None or not records:
      return
    self.graph = learner.read_graph(learner.graph_dir(run_dir.path, len(records)))
    if len(records) >= 2:
      self._recorded = learner.read_graph(learner.graph_dir(run_dir.path, len(records) - 1))
    self._replay = records
