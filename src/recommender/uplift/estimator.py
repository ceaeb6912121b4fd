"""``MultiTreatmentUplift``: a family of LightGBM meta-learners, chosen or blended per outcome."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from recommender.uplift.base import (
    FeatureSpec,
    JSONScalar,
    check_user_params,
    make_reference,
    validate_outcomes,
    validate_propensity,
    validate_treatment,
)
from recommender.uplift.config import (
    LEARNERS,
    MIN_ROWS_PER_ARM_PER_FOLD,
    OUTCOME_PARAMS,
    SELECTIONS,
)
from recommender.uplift.learners import (
    FitContext,
    FoldLearner,
    dr_pseudo_outcomes,
    fit_dr,
    fit_s,
    fit_t,
    fit_x,
    predict_s,
    with_arm,
)
from recommender.uplift.propensity import (
    fit_propensity,
    overlap_report,
    pairwise,
    predict_propensity,
    with_logged,
)
from recommender.uplift.selection import Selection, dr_loss, r_loss, select
from recommender.uplift.uncertainty import jackknife_std, shrunk_std


class MultiTreatmentUplift(BaseEstimator):
    """Multi-treatment uplift on LightGBM: S, T, X and DR learners, selected by a held-out loss.

    Fitting (per outcome; nuisances shared):

    1. Rows are split into ``n_folds`` folds stratified by arm. Propensity e_a(x) (multinomial
       LightGBM) and S-learner outcome models are cross-fitted, giving out-of-fold nuisances.
       With ``propensity`` given (probability of the *received* arm under the logging policy),
       the received arm's entry is the logged value and the other arms' entries come from the
       fitted model: the logged value is exact for the arm the row got, and is the one its
       inverse-propensity weight must use, but it carries no information on the other arms,
       which the X/DR learners and the losses need (e.g. the control probability of a treated
       row). Everything is clipped below at ``propensity_clip``.
    2. For each fold k every learner is fitted on the other folds and predicts fold k: these
       out-of-fold effects are scored by the held-out causal loss (``selection``: "dr" pairwise
       DR pseudo-outcome loss, or "r" R-loss) built from out-of-fold nuisances. No effect
       prediction used in the loss comes from a model that saw the row.
    3. Non-negative blend weights summing to 1 minimise that loss; members with weight below
       ``config.PRUNE_WEIGHT`` are dropped (weights re-solved), and the best single learner
       replaces the blend when its loss is not above the blend's loss with weights cross-fitted
       over the folds (the in-sample blend can never lose). Then the choice is shrunk to
       the per-treatment mean effect, tau_s(x) = mean + lambda (tau(x) - mean), lambda in
       {0, .25, .5, .75, 1} by the same loss with a one-standard-error rule (``shrinkage``).
       lambda = 0 means "best single type for everyone": with weak evidence the model collapses
       to it.
    4. No refit: the final predictor of each learner is the average of its F fold models (each
       fitted on (F - 1) / F of the rows), which is what the loss scored, and whose spread gives
       the uncertainty (grouped jackknife, see ``predict_effects_with_std``).

    Parameters
    ----------
    control: label of the control arm in ``treatment``.
    learners: subset of ("s", "t", "x", "dr") to consider.
    selection: "dr" or "r", the held-out causal loss.
    n_folds: cross-fitting folds (>= 3: the DR learner's nuisances exclude two folds).
    propensity_clip: lower clip of propensities, in (0, 0.5).
    shrinkage: choose lambda on the grid; False keeps lambda = 1 (no shrinkage).
    lgbm_params: LightGBM parameters (canonical names) applied on top of every stage's defaults
        (see ``recommender.uplift.config``); objective and rounds are set by the estimator.
    n_estimators: boosting rounds of outcome models (learning rate 0.1); effect models and the
        propensity model use half.
    random_state: seed (int) or None.
    n_jobs: parallel threads over independent boosters (-1, the default = all cores, None = 1);
        each booster fits and predicts on one thread, so this never oversubscribes the cores.
    """

    def __init__(
        self,
        control: Any = "none",
        learners: tuple[str, ...] = LEARNERS,
        selection: str = "dr",
        n_folds: int = 3,
        propensity_clip: float = 0.01,
        shrinkage: bool = True,
        lgbm_params: dict[str, Any] | None = None,
        n_estimators: int = 50,
        random_state: int | None = 0,
        n_jobs: int | None = -1,
    ) -> None:
        self.control = control
        self.learners = learners
        self.selection = selection
        self.n_folds = n_folds
        self.propensity_clip = propensity_clip
        self.shrinkage = shrinkage
        self.lgbm_params = lgbm_params
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fit

    def _check_params(self) -> tuple[str, ...]:
        learners = tuple(self.learners)
        if not learners or len(set(learners)) != len(learners):
            raise ValueError(
                f"learners must be a non-empty tuple of distinct names, got {learners}"
            )
        unknown = [c for c in learners if c not in LEARNERS]
        if unknown:
            raise ValueError(f"unknown learners {unknown}; choose from {LEARNERS}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if not isinstance(self.n_folds, int | np.integer) or self.n_folds < 3:
            raise ValueError(f"n_folds must be an int >= 3, got {self.n_folds!r}")
        if not 0.0 < float(self.propensity_clip) < 0.5:
            raise ValueError(f"propensity_clip must be in (0, 0.5), got {self.propensity_clip!r}")
        if not isinstance(self.n_estimators, int | np.integer) or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be an int >= 1, got {self.n_estimators!r}")
        check_user_params(self.lgbm_params)
        return tuple(c for c in LEARNERS if c in learners)

    def fit(
        self, X: Any, treatment: Any, y: Any, propensity: Any | None = None
    ) -> MultiTreatmentUplift:
        """Fit the learner family and choose the blend and shrinkage per outcome.

        X: DataFrame (numeric, bool, categorical or string columns) or array (n, n_features).
        treatment: array-like (n,) of arm labels including ``control``.
        y: array-like (n,) or (n, n_outcomes); DataFrame columns become ``outcome_names_``.
        propensity: optional (n,) probability in (0, 1] of the received arm under the logging
            policy.
        """
        learners = self._check_params()
        spec = FeatureSpec.from_data(X)
        Xenc = spec.transform(X)
        n = Xenc.shape[0]
        F = int(self.n_folds)
        treatments, arm = validate_treatment(
            treatment, n, self.control, F * MIN_ROWS_PER_ARM_PER_FOLD
        )
        Y, outcome_names = validate_outcomes(y, n)
        logged = validate_propensity(propensity, n)
        n_arms = len(treatments) + 1
        K, n_out = n_arms - 1, Y.shape[1]
        clip = float(self.propensity_clip)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        n_jobs = int(effective_n_jobs(self.n_jobs))

        fold_id = np.empty(n, dtype=np.int64)
        splitter = StratifiedKFold(n_splits=F, shuffle=True, random_state=seed)
        for k, (_, held) in enumerate(splitter.split(np.zeros(n), arm)):
            fold_id[held] = k
        held_rows = [np.flatnonzero(fold_id == k) for k in range(F)]
        train_rows = [np.flatnonzero(fold_id != k) for k in range(F)]

        max_bin = int((self.lgbm_params or {}).get("max_bin", OUTCOME_PARAMS["max_bin"]))
        categorical = spec.categorical_indices
        ctx = FitContext(
            X=Xenc,
            ref=make_reference(Xenc, categorical, max_bin, seed, n_jobs),
            ref_s=make_reference(
                with_arm(Xenc, arm), [*categorical, Xenc.shape[1]], max_bin, seed, n_jobs
            ),
            arm=arm,
            n_arms=n_arms,
            n_estimators=int(self.n_estimators),
            user_params=self.lgbm_params,
            seed=seed,
            clip=clip,
        )
        parallel = Parallel(n_jobs=n_jobs, backend="threading")

        # Stage 1: nuisances. Fold models (fit on train_rows[k], predict held_rows[k]) and
        # single-fold models (fit on held_rows[l], predict every other row).
        def prop_task(rows: np.ndarray, predict_rows: np.ndarray, s: int) -> tuple[Any, Any]:
            b = fit_propensity(
                arm,
                n_arms,
                rows,
                n_estimators=ctx.n_estimators,
                user_params=self.lgbm_params,
                reference=ctx.ref,
                seed=s,
            )
            return b, predict_propensity(b, Xenc[predict_rows])

        def s_task(o: int, rows: np.ndarray, predict_rows: np.ndarray, s: int) -> tuple[Any, Any]:
            b = fit_s(ctx, Y[:, o], rows, s)
            return b, predict_s(b, Xenc[predict_rows], n_arms, 1)

        prop_jobs = [(train_rows[k], held_rows[k], seed + k) for k in range(F)]
        prop_jobs += [(held_rows[k], train_rows[k], seed + F + k) for k in range(F)]
        s_jobs = [
            (o, rows, pred, seed + 100 * (o + 1) + j)
            for o in range(n_out)
            for j, (rows, pred, _) in enumerate(prop_jobs)
        ]
        results = parallel(
            [delayed(prop_task)(*job) for job in prop_jobs]
            + [delayed(s_task)(*job) for job in s_jobs]
        )
        prop_results, s_results = results[: 2 * F], results[2 * F :]

        e_oof = np.empty((n, n_arms))
        e_single = np.full((F, n, n_arms), np.nan)
        for k in range(F):
            e_oof[held_rows[k]] = prop_results[k][1]
            e_single[k, train_rows[k]] = prop_results[F + k][1]
        propensity_models = [prop_results[k][0] for k in range(F)]
        mu_oof = np.empty((n_out, n, n_arms))
        mu_single = np.full((n_out, F, n, n_arms), np.nan)
        s_models: list[list[lgb.Booster]] = [[] for _ in range(n_out)]
        for o in range(n_out):
            for k in range(F):
                booster, pred = s_results[o * 2 * F + k]
                s_models[o].append(booster)
                mu_oof[o, held_rows[k]] = pred
                mu_single[o, k, train_rows[k]] = s_results[o * 2 * F + F + k][1]
        e_oof_used = with_logged(e_oof, arm, logged)

        # Stage 2: learners per (outcome, fold), with out-of-fold effects on the held fold.
        def learner_task(o: int, k: int) -> tuple[dict[str, FoldLearner], dict[str, np.ndarray]]:
            rows, held = train_rows[k], held_rows[k]
            s = seed + 1000 * (o + 1) + 10 * k
            fitted: dict[str, FoldLearner] = {}
            effects: dict[str, np.ndarray] = {}
            if "s" in learners:
                fitted["s"] = FoldLearner("s", {"s": s_models[o][k]}, K)
                effects["s"] = mu_oof[o, held, 1:] - mu_oof[o, held, :1]
            if "t" in learners or "x" in learners:
                t_learner = fit_t(ctx, Y[:, o], rows, s)
                if "t" in learners:
                    fitted["t"] = t_learner
                    effects["t"] = t_learner.effects(Xenc[held])
                if "x" in learners:
                    fitted["x"] = fit_x(ctx, Y[:, o], rows, t_learner, s + 1)
                    effects["x"] = fitted["x"].effects(Xenc[held], pairwise(e_oof[held], clip))
            if "dr" in learners:
                mu = _exclusive_mean(mu_single[o], fold_id, rows, k)
                e = _exclusive_mean(e_single, fold_id, rows, k)
                e = with_logged(e, arm[rows], None if logged is None else logged[rows])
                fitted["dr"] = fit_dr(ctx, Y[:, o], rows, mu, e, s + 2)
                effects["dr"] = fitted["dr"].effects(Xenc[held])
            return fitted, effects

        stage2 = parallel(delayed(learner_task)(o, k) for o in range(n_out) for k in range(F))

        # Stage 3: selection per outcome.
        fold_learners: list[dict[str, list[FoldLearner]]] = []
        selections: list[Selection] = []
        mean_effect = np.empty((K, n_out))
        mean_se = np.empty((K, n_out))
        for o in range(n_out):
            oof = {c: np.empty((n, K)) for c in learners}
            per_fold: dict[str, list[FoldLearner]] = {c: [] for c in learners}
            for k in range(F):
                fitted, effects = stage2[o * F + k]
                for c in learners:
                    per_fold[c].append(fitted[c])
                    oof[c][held_rows[k]] = effects[c]
            fold_learners.append(per_fold)
            phi_full = _aipw(Y[:, o], arm, mu_oof[o], e_oof_used, clip)
            mean_effect[:, o] = phi_full.mean(axis=0)
            mean_se[:, o] = phi_full.std(axis=0, ddof=1) / np.sqrt(n)
            mean_rows = np.empty((n, K))
            for k in range(F):
                mean_rows[held_rows[k]] = phi_full[train_rows[k]].mean(axis=0)
            # Loss nuisance: the single-fold S models of the other folds, not the S candidate
            # itself (a candidate that is also the loss's plug-in part is favoured in finite
            # samples).
            mu_loss = _exclusive_mean(mu_single[o], fold_id, np.arange(n), -1)
            if self.selection == "dr":
                loss = dr_loss(dr_pseudo_outcomes(Y[:, o], arm, mu_loss, e_oof_used, clip))
            else:
                loss = r_loss(Y[:, o], arm, mu_loss, e_oof)
            selections.append(select(loss, oof, mean_rows, bool(self.shrinkage), fold_id))

        received = logged if logged is not None else e_oof[np.arange(n), arm]
        self.feature_spec_ = spec
        self.n_folds_ = F
        self.n_features_in_ = len(spec.names)
        if spec.from_frame:
            self.feature_names_in_ = np.asarray(spec.names, dtype=object)
        self.treatments_: tuple[JSONScalar, ...] = treatments
        self.outcome_names_: tuple[str, ...] = outcome_names
        self.learners_ = fold_learners
        self.propensity_models_ = propensity_models
        self.mean_effect_ = mean_effect
        self.mean_effect_se_ = mean_se
        self.chosen_: dict[str, dict[str, Any]] = {
            name: {"weights": sel.weights, "shrinkage": sel.shrinkage}
            for name, sel in zip(outcome_names, selections, strict=True)
        }
        self.selection_report_ = _selection_report(learners, outcome_names, selections)
        self.overlap_report_ = overlap_report(
            received,
            arm,
            (self.control, *treatments),
            clip,
            "logged" if logged is not None else "fitted",
        )
        return self

    # -------------------------------------------------------------- predict

    def _encode(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "chosen_")
        return self.feature_spec_.transform(X)

    def _fold_effects(self, Xenc: np.ndarray, o: int, weights: dict[str, float]) -> np.ndarray:
        """Blended (unshrunk) effects of each fold model: array (F, n, K)."""
        F = int(self.n_folds_)
        threads = int(effective_n_jobs(self.n_jobs))
        out = np.zeros((F, Xenc.shape[0], len(self.treatments_)))
        for k in range(F):
            p_pair = None
            if weights.get("x", 0.0) > 0:
                e = predict_propensity(self.propensity_models_[k], Xenc, threads)
                p_pair = pairwise(e, float(self.propensity_clip))
            for c, w in weights.items():
                if w > 0:
                    out[k] += w * self.learners_[o][c][k].effects(Xenc, p_pair, threads)
        return out

    def _predict(self, X: Any, with_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        Xenc = self._encode(X)
        n, K, n_out = Xenc.shape[0], len(self.treatments_), len(self.outcome_names_)
        effect = np.empty((n, K, n_out))
        std = np.empty((n, K, n_out)) if with_std else None
        for o, name in enumerate(self.outcome_names_):
            lam = float(self.chosen_[name]["shrinkage"])
            mean = self.mean_effect_[:, o][None, :]
            if lam == 0.0:
                effect[:, :, o] = mean
                if std is not None:
                    std[:, :, o] = self.mean_effect_se_[:, o][None, :]
                continue
            folds = self._fold_effects(Xenc, o, self.chosen_[name]["weights"])
            effect[:, :, o] = mean + lam * (folds.mean(axis=0) - mean)
            if std is not None:
                std[:, :, o] = shrunk_std(jackknife_std(folds), lam, self.mean_effect_se_[:, o])
        return effect, std

    def predict_effects(self, X: Any) -> np.ndarray:
        """Effect of each treatment vs control: array (n, n_treatments, n_outcomes).

        Axis 1 follows ``treatments_``, axis 2 ``outcome_names_``; units are the outcome's.
        """
        return self._predict(X, with_std=False)[0]

    def predict_effects_with_std(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(effect, std), both (n, n_treatments, n_outcomes).

        std is the grouped-jackknife standard deviation of the effect over the cross-fit fold
        models (sensitivity to the training rows), scaled by the shrinkage lambda, combined
        with the standard error of the per-treatment mean effect. It excludes bias and, with
        few folds, is noisy: a relative uncertainty scale, not a calibrated interval.
        """
        effect, std = self._predict(X, with_std=True)
        assert std is not None
        return effect, std

    def predict_learner_effects(self, X: Any, learner: str) -> np.ndarray:
        """Unshrunk, fold-averaged effects of one candidate learner: (n, n_treatments, n_outcomes).

        For diagnostics and benchmarks. After ``load_uplift`` only learners with a positive
        weight for every outcome are available.
        """
        Xenc = self._encode(X)
        out = np.empty((Xenc.shape[0], len(self.treatments_), len(self.outcome_names_)))
        for o in range(len(self.outcome_names_)):
            if learner not in self.learners_[o]:
                raise ValueError(f"learner {learner!r} is not available in this fitted model")
            out[:, :, o] = self._fold_effects(Xenc, o, {learner: 1.0}).mean(axis=0)
        return out


def _exclusive_mean(
    single: np.ndarray, fold_id: np.ndarray, rows: np.ndarray, k: int
) -> np.ndarray:
    """Average of single-fold model predictions over folds l not in {fold(row), k}.

    single: (F, n, A) with model l's predictions on rows outside fold l. Returns (len(rows), A).
    """
    F = single.shape[0]
    out = np.zeros((len(rows), single.shape[2]))
    count = np.zeros(len(rows))
    row_fold = fold_id[rows]
    for fold in range(F):
        if fold == k:
            continue
        use = row_fold != fold
        out[use] += single[fold, rows[use]]
        count[use] += 1
    return out / count[:, None]


def _aipw(y: np.ndarray, arm: np.ndarray, mu: np.ndarray, e: np.ndarray, clip: float) -> np.ndarray:
    """Full-population AIPW scores of tau_k, shape (n, K); their mean is the average effect."""
    e = np.maximum(e, clip)
    n, A = mu.shape
    resid = np.zeros((n, A))
    idx = np.arange(n)
    resid[idx, arm] = (y - mu[idx, arm]) / e[idx, arm]
    psi = mu + resid
    return psi[:, 1:] - psi[:, :1]


def _selection_report(
    learners: tuple[str, ...], outcomes: tuple[str, ...], selections: list[Selection]
) -> pd.DataFrame:
    """Candidates (learners, blend, blend_cv, constant, shrunk) x (outcome, loss/weight/lambda).

    weight: the chosen weight of each learner (NaN for the other rows)."""
    rows = [*learners, "blend", "blend_cv", "constant", "shrunk"]
    data: dict[tuple[str, str], list[float]] = {}
    for name, sel in zip(outcomes, selections, strict=True):
        data[(name, "loss")] = [sel.losses[r] for r in rows]
        data[(name, "weight")] = [sel.weights.get(r, np.nan) for r in rows]
        lambdas = {"blend": 1.0, "constant": 0.0, "shrunk": sel.shrinkage}
        data[(name, "lambda")] = [lambdas.get(r, 1.0) for r in rows]
    report = pd.DataFrame(data, index=pd.Index(rows, name="candidate"))
    report.columns = pd.MultiIndex.from_tuples(report.columns, names=["outcome", "metric"])
    return report
