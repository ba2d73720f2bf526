"""Policies: model backends (tiny, hf, vllm, openai) behind one interface that turns conversations into completions."""

from sparring.policies.policy import Completion, Policy, SamplingParams, make_policy

__all__ = ["Completion", "Policy", "SamplingParams", "make_policy"]
