"""What the batch estimators (``GaussianMixture``, ``BayesianGaussianMixture``)
share: their fitting parameters as the core takes them, the attributes a fit
leaves, and the ``estimator`` object of their model files."""

import json
import math
import warnings

from sklearn.exceptions import ConvergenceWarning

#: scikit-learn's ``init_params`` and the names a model file records.
INIT_NAMES = {
    "kmeans": "kmeans",
    "k-means++": "kmeans++",
    "random": "random",
    "random_from_data": "random-from-data",
}
_INIT_PARAMS = {v: k for k, v in INIT_NAMES.items()}


class BatchFitMixin:
    def _em_params(self, n_init):
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "max_iter": self.max_iter,
            "tol": float(self.tol),
            "reg_covar": float(self.reg_covar),
            "n_init": n_init,
            "init_params": self.init_params,
        }

    def _record_fit(self, converged, n_iter, lower_bound, lower_bounds, seed, from_model):
        """scikit-learn's fitted attributes of a run, and its warning when the run
        did not converge."""
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self.converged_ = converged
        self.n_iter_ = n_iter
        self.lower_bound_ = lower_bound
        self.lower_bounds_ = list(lower_bounds)
        self._fit_seed = seed
        self._fit_init = "model" if from_model else None

    def _fit_info(self):
        """The model file's ``estimator`` object (less its kind) as JSON, or None
        when the estimator was not fitted here or loaded with one."""
        if not (hasattr(self, "converged_") and hasattr(self, "_fit_seed")):
            return None
        return json.dumps(
            {
                "max_iter": self.max_iter,
                "tol": self.tol,
                "reg_covar": self.reg_covar,
                "n_init": self.n_init,
                "init": self._fit_init or INIT_NAMES[self.init_params],
                "seed": self._fit_seed,
                "converged": bool(self.converged_),
                "n_iter": int(self.n_iter_),
                "lower_bound": float(self.lower_bound_)
                if math.isfinite(self.lower_bound_)
                else None,
            }
        )

    @staticmethod
    def _params_of_file(estimator):
        """The parameters a batch ``estimator`` object records."""
        if estimator.get("kind") != "batch":
            return {}
        params = dict(
            max_iter=estimator["max_iter"],
            tol=estimator["tol"],
            reg_covar=estimator["reg_covar"],
            n_init=estimator["n_init"],
            random_state=estimator["seed"],
        )
        if estimator["init"] in _INIT_PARAMS:
            params["init_params"] = _INIT_PARAMS[estimator["init"]]
        return params

    def _restore_fit(self, estimator):
        """The fitted attributes a batch ``estimator`` object records."""
        if estimator.get("kind") != "batch":
            return
        self.converged_ = estimator["converged"]
        self.n_iter_ = estimator["n_iter"]
        bound = estimator.get("lower_bound")
        self.lower_bound_ = -math.inf if bound is None else bound
        self._fit_seed = estimator["seed"]
        self._fit_init = None if estimator["init"] in _INIT_PARAMS else estimator["init"]
