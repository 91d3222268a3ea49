"""The provider simulator: OpenAI, Anthropic and Gemini wire protocols served on loopback.

`frugal sim` runs it; tests and the demo start it in a thread (`SimThread`).
"""

from providers.sim.run import SimThread, run_sim, start_sim

__all__ = ["SimThread", "run_sim", "start_sim"]
