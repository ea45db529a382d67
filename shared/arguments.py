"""Command-line parsing shared by the workers and the coinstream commands: an argument
error is one line naming the option, then exit 2, as a config error is one line."""

import argparse
import math
from collections.abc import Callable
from decimal import Decimal
from typing import NoReturn, TypeVar

EXIT_USAGE = 2

Number = TypeVar("Number", int, float, Decimal)


class OneLineParser(argparse.ArgumentParser):
    """argparse, without the usage block it prints before an error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def number(convert: Callable[[str], Number], *, above: Number | None = None, at_least: Number | None = None,
           at_most: Number | None = None) -> Callable[[str], Number]:
    """An argparse type: a finite number in the range, else one line saying which range."""
    if above is not None:
        bounds = f"more than {above}"
    elif at_least is not None and at_most is not None:
        bounds = f"from {at_least} to {at_most}"
    else:
        bounds = f"{at_least} or more" if at_least is not None else f"{at_most} or less"
    wanted = f"{'a whole number' if convert is int else 'a number'} {bounds}"

    def parse(text: str) -> Number:
        try:
            value = convert(text)
        except (ValueError, ArithmeticError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        if not (math.isfinite(value) and (above is None or value > above)
                and (at_least is None or value >= at_least) and (at_most is None or value <= at_most)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")
        return value

    return parse
