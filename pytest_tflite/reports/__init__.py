"""Reports for people and machines, all read from typed results (``results.py``).

``tables``: the failure table, the terminal summary and the CLI's tables; ``document``: the JSON
report. Nothing here imports pytest or TensorFlow.
"""
