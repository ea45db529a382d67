"""python -m simulator: serve simulated exchanges on 127.0.0.1 until interrupted.

  python -m simulator --exchange binance --exchange upbit --rate 100 --markets 20 \
      --write-config run/simulator.yaml

--real-prices puts the markets near the real market's prices, with USDT-KRW on the
KRW exchanges (simulator/prices.py), as `coinstream demo` runs it.

--write-config writes a coinstream override file that points the workers at the
simulator (ws_url, rest_url, symbols), so `--config run/simulator.yaml` just works.
--no-edge-shapes leaves out the rarer shapes the real wire carries ("" prices, integer
prices, frames of older servers...), which are otherwise one ticker frame in 50.
"""

import argparse
import asyncio
import importlib
import json
import signal
import sys
from pathlib import Path

import uvloop
import yaml

from simulator import prices
from simulator.core import ExchangeSim, free_listening_port, universe


def mode(name: str) -> type[ExchangeSim]:
    """The simulator mode of an exchange: the ExchangeSim subclass in simulator/<name>.py."""
    try:
        module = importlib.import_module(f"simulator.{name}")
    except ModuleNotFoundError:
        raise SystemExit(f"simulator: error: no simulator mode for exchange {name!r}") from None
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, ExchangeSim) and value is not ExchangeSim:
            return value
    raise SystemExit(f"simulator: error: simulator/{name}.py defines no ExchangeSim")


def override_config(sims: list[ExchangeSim], host: str) -> dict[str, object]:
    exchanges: dict[str, dict[str, object]] = {}
    for sim in sims:
        exchanges[sim.name] = {
            "ws_url": f"ws://{host}:{sim.port}{sim.ws_paths[0]}",
            "rest_url": f"http://{host}:{sim.port}",
            "symbols": [f"{quote.base}-{quote.quote}" for quote in sim.quotes.values()],
            # The simulator is the only host: no switching to the exchange's real alternate.
            "alternate_ws_url": None,
            "alternate_rest_url": None,
        }
        if sim.book_ws_path is not None:
            exchanges[sim.name]["book_ws_url"] = f"ws://{host}:{sim.port}{sim.book_ws_path}"
    # No /metrics port: simulated workers must not take a real collector's ports.
    return {"exchanges": exchanges, "metrics": {"ports": {sim.name: 0 for sim in sims}}}


async def serve(arguments: argparse.Namespace) -> None:
    sims: list[ExchangeSim] = []
    for index, name in enumerate(arguments.exchange):
        sim_class = mode(name)
        markets = (prices.markets if arguments.real_prices else universe)(sim_class.default_quote, arguments.markets)
        sim = sim_class(markets, arguments.rate, seed=index + 1, edge_shapes=arguments.edge_shapes)
        if arguments.real_prices:
            prices.set_real_levels(sim.quotes.values())
        if arguments.journal_dir:
            Path(arguments.journal_dir).mkdir(parents=True, exist_ok=True)
            sim.journal_to(str(Path(arguments.journal_dir) / f"{name}.jsonl"))
        port = arguments.base_port + index if arguments.base_port else free_listening_port()
        await sim.start(arguments.host, port)
        sims.append(sim)
        print(f"simulator: {name} on ws://{arguments.host}:{sim.port} "
              f"(ws {', '.join(sim.ws_paths)}; control /_sim/)", flush=True)
    if arguments.write_config:
        Path(arguments.write_config).parent.mkdir(parents=True, exist_ok=True)
        Path(arguments.write_config).write_text(yaml.safe_dump(override_config(sims, arguments.host)))
    print("simulator: ready " + json.dumps({sim.name: sim.port for sim in sims}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for sim in sims:
        await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchange", action="append", required=True, help="exchange to simulate (repeat)")
    parser.add_argument("--rate", type=float, default=10.0, help="ticker frames per second per connection")
    parser.add_argument("--markets", type=int, default=10, help="markets per exchange")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=0, help="first port (default: any free port)")
    parser.add_argument("--write-config", metavar="FILE", help="write a coinstream override file here")
    parser.add_argument("--real-prices", action="store_true",
                        help="prices near the real market's, and USDT-KRW on KRW exchanges (default: many magnitudes)")
    parser.add_argument("--journal-dir", metavar="DIR", help="append every frame sent to DIR/<exchange>.jsonl")
    parser.add_argument("--no-edge-shapes", dest="edge_shapes", action="store_false",
                        help="send only the common ticker shape, none of the rarer ones the real wire carries "
                             "(one ticker frame in 50 by default): the benchmarks' load")
    arguments = parser.parse_args()
    if arguments.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("simulator: error: --host must be a loopback address")
    uvloop.run(serve(arguments))


if __name__ == "__main__":
    main()
