"""Project-independent helpers: annotation parsing, evaluation, submission files, logging.

Nothing in ``utils`` imports the rest of the project, and the evaluation side (``charades_csv``,
``charades_eval``, ``submission``) needs numpy only, not torch.
"""
