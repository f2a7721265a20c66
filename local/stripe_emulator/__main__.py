"""`python -m local.stripe_emulator --port 12111`: the emulator alone, empty, until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from local.stripe_emulator.emulator import StripeEmulator


def main() -> None:
    parser = argparse.ArgumentParser(description="A Stripe-compatible HTTP server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=12111)
    args = parser.parse_args()
    emulator = StripeEmulator()
    print(f"Stripe emulator on {emulator.serve(args.port)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.shutdown()


if __name__ == "__main__":
    main()
