"""Stock OpenSpiel psro_v2 with our exact oracle, Nash LP and NashConv.

  python examples/stock_psro_with_our_parts.py --game=kuhn_poker --iterations=8
  python examples/stock_psro_with_our_parts.py --meta_strategy_method=ext_rectified_nash

Stock's `PSROSolver` runs its own loop (sampled payoff tables); we supply the
oracle (`openspiel_compat.StockOracle`), the meta-solver (registered as
`ext_nash`, `ext_rectified_nash`, ...) and an exact NashConv of stock's
meta-strategy, checked against OpenSpiel's own PolicyAggregator +
exploitability.nash_conv. Stock's own settings apply unchanged: by default
(`sample_from_marginals=False`) it hands the oracle a joint meta-strategy.
Needs stock psro_v2's imports: pip install 'openspiel_psro_ext[stock]'.
"""

import pyspiel
from absl import app, flags
from open_spiel.python.algorithms import exploitability as os_exploitability
from open_spiel.python.algorithms import policy_aggregator
from open_spiel.python.algorithms.psro_v2 import psro_v2

from openspiel_psro_ext.compat import openspiel_compat
from openspiel_psro_ext.game import exploitability

FLAGS = flags.FLAGS
flags.DEFINE_string("game", "kuhn_poker", "OpenSpiel game.")
flags.DEFINE_integer("iterations", 8, "PSRO iterations.")
flags.DEFINE_integer("sims_per_entry", 200, "Stock's sampled games per payoff entry.")
flags.DEFINE_string("meta_strategy_method", "ext_nash", "Any psro_v2 method.")
flags.DEFINE_string("training_strategy_selector", "probabilistic", "Stock's selector.")
flags.DEFINE_string("rectifier", "", "Stock's rectifier: '' or 'rectified'.")
flags.DEFINE_bool("sample_from_marginals", False, "Stock's setting (its default).")


def main(argv):
  del argv
  openspiel_compat.register()  # adds ext_nash, ext_prd, ... to psro_v2
  game = pyspiel.load_game(FLAGS.game)
  solver = psro_v2.PSROSolver(
    game,
    openspiel_compat.StockOracle(game, "exact"),
    sims_per_entry=FLAGS.sims_per_entry,
    meta_strategy_method=FLAGS.meta_strategy_method,
    training_strategy_selector=FLAGS.training_strategy_selector,
    rectifier=FLAGS.rectifier,
    sample_from_marginals=FLAGS.sample_from_marginals,
  )
  for iteration in range(FLAGS.iterations):
    solver.iteration()
    policies, sigma = solver.get_policies(), solver.get_meta_strategies()
    ours = exploitability.mixture_nash_conv(game, policies, sigma).nash_conv
    aggregated = policy_aggregator.PolicyAggregator(game).aggregate(
      list(range(game.num_players())), policies, sigma
    )
    theirs = os_exploitability.nash_conv(game, aggregated)
    print(
      f"iteration {iteration}: population {len(policies[0])},"
      f" NashConv ours {ours:.6f} / OpenSpiel {theirs:.6f}"
    )


if __name__ == "__main__":
  app.run(main)
