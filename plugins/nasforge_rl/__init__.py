"""nasforge's built-in reinforcement-learning family (``rl``) and its gymnasium tasks.

Registered through the ``nasforge`` entry-point group. Importing this package imports
neither torch nor gymnasium; the tasks hook lists gymnasium's registry when nasforge's
registry is first collected (see :func:`nasforge_rl.envs.task_defs`).

Tasks: ``CartPole-v1``, ``Acrobot-v1``, ``Pendulum-v1``, and ``gym:<id>`` for every id in
gymnasium's registry (``gym:MountainCar-v0``, ``gym:LunarLander-v3`` when Box2D is installed,
...). For an env your own package registers with gymnasium, register
``gym_task("my_package:MyEnv-v0")`` from a plugin's ``register_tasks``.

A trained agent acts on a batch of observations and returns the env's actions::

    import gymnasium as gym, torch
    import nasforge

    result = nasforge.search("rl", task="CartPole-v1", trials=10)
    agent = result.best_model()               # an nasforge_rl.agent.Agent in eval mode
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        action = agent(torch.as_tensor(obs[None], dtype=torch.float32))[0]
        obs, reward, terminated, truncated, _ = env.step(action.item())   # continuous: action.numpy()
        done = terminated or truncated

Without the search result, rebuild it from the trial's parameters and saved weights
(``model/state_dict.pt`` in the trial's MLflow run)::

    family, task = RLFamily(), load_control_task("CartPole-v1", seed=0)
    agent = family.build(family.make_config(params), task)
    agent.load_state_dict(torch.load("state_dict.pt", weights_only=True))
    agent.eval()

The parent run's MLflow model (``mlflow.pytorch.load_model(result.model_uri)``) is the same
function as a ``torch.export`` graph: observations in, actions out.
"""

from nasforge.hookspecs import hookimpl
from nasforge_rl.config import RLConfig
from nasforge_rl.envs import gym_task, load_control_task, task_defs
from nasforge_rl.family import RLFamily

__all__ = ["RLConfig", "RLFamily", "gym_task", "load_control_task", "register_families", "register_tasks"]


@hookimpl
def register_families(register):
    register(RLFamily())


@hookimpl
def register_tasks(register):
    for task_def in task_defs():
        register(task_def)
