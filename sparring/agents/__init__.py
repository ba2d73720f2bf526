"""Agents: the solver's companions in self-play: proposer, verifiers, reflector and skill library."""
