"""One training trial: data, models, optimizers, training, and in-run Koopman estimation.

Never imports ``ray`` or ``analysis``; a trial runs in a plain Python process. Importing the
package itself stays light (no torch) so that pure modules such as :mod:`study.koopman` and
:mod:`study.records` can be used without a deep-learning stack.
"""

__version__ = "0.1.0"
