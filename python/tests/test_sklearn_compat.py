"""scikit-learn's own estimator checks, every one of them, for every class."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import gmm_stream

ESTIMATORS = [
    gmm_stream.GaussianMixture(),
    gmm_stream.BayesianGaussianMixture(),
    gmm_stream.OnlineGaussianMixture(),
]


def expected_failed_checks(estimator):
    """Checks that cannot apply, by class, with the reason (scikit-learn's own
    mechanism for declaring them). None today."""
    return getattr(estimator, "_expected_failed_checks", lambda: {})()


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
