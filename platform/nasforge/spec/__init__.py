"""What a search asks for: its arguments (:mod:`.arguments`) and its search space (:mod:`.space`), checked up front."""
