import pytest


@pytest.fixture(scope="session", autouse=True)
def strategy_plugins():
    """The controller and evolution plugins, registered at run time unless already default plugins."""
    import nasforge
    import nasforge.strategies.controller.strategy as controller
    import nasforge.strategies.evolution as evolution
    from nasforge.plugins import get_registry

    pm = get_registry().pm
    get_registry().load()
    added = [m for m in (controller, evolution) if not pm.is_registered(m) and pm.get_plugin(m.__name__) is None]
    for module in added:
        nasforge.register(module, name=module.__name__)
    yield
    for module in added:
        nasforge.unregister(module)
