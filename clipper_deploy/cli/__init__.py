"""The command line: Invoke tasks (``*_tasks.py``, one namespace in :mod:`.namespace`) behind
the ``clipper-deploy`` command (:mod:`.program`); ``invoke`` in the repository serves the same
namespace through ``tasks.py``.

Tasks stay thin: the work lives in the library.
"""


def main() -> None:
    """The ``clipper-deploy`` console script (imported lazily: ``import clipper_deploy.cli``
    stays cheap)."""
    from clipper_deploy.cli.program import main as run

    run()
