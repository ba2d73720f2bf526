"""Every sparring environment, registered in Gymnasium's own registry (`gymnasium.make("Countdown-v0")`)."""

from gymnasium.envs.registration import register

register(id="Countdown-v0", entry_point="sparring.envs.countdown:CountdownEnv")
register(id="CountdownSteps-v0", entry_point="sparring.envs.countdown:CountdownStepsEnv")
register(id="TextNav-v0", entry_point="sparring.envs.textnav:TextNavEnv")
register(id="ToolUse-v0", entry_point="sparring.envs.tooluse:ToolUseEnv")
register(id="HumanEval-v0", entry_point="sparring.envs.humaneval:HumanEvalEnv")
register(id="CodeSynth-v0", entry_point="sparring.envs.codesynth:CodeSynthEnv")
register(id="CodeRepair-v0", entry_point="sparring.envs.code_repair:CodeRepairEnv")
register(id="ReasoningGym-v0", entry_point="sparring.envs.rgym:ReasoningGymEnv")
register(id="TextWorld-v0", entry_point="sparring.envs.textworld_games:TextWorldEnv")
