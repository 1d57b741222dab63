"""What runs next and when a trial stops: the successive-halving ladder (``ladder``), the cost
rule and the search end (``cost``), the time budget (``budget``), and the judge that applies
them while a fold trains (``fold_judge``).

Imports ``search.errors``, ``search.runtime`` and ``search.store`` from the search package.
"""
