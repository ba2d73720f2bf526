"""Trainers: bootstrap on expert demonstrations, expert iteration and GRPO, all on TRL."""
