"""Agents: policies (tiny, hf, vllm, openai) behind one interface, and the solver that plays env episodes."""

from sparring.agents.policy import Completion, Policy, SamplingParams, make_policy
from sparring.agents.solver import Solver

__all__ = ["Completion", "Policy", "SamplingParams", "Solver", "make_policy"]
