"""Simulated organisations with known true nudge effects (tests, demos, benchmarks, closed loop).

Modules, one concern each: ``config`` (settings, survey calendar), ``catalogue`` (orgs,
competency models, nudge catalogue), ``managers`` (profiles, joiners, attrition), ``effects``
(the true effect model), ``policy`` (historical logging policy), ``surveys`` (360 and
engagement observation), ``world`` (the stepped world), ``frames`` (contract tables),
``simulate`` (logging-policy run), ``writer`` (atomic output).

Generative model (one period = [360 wave k, 360 wave k+1), waves on 1 Mar and 1 Sep;
engagement pulses on 1 Mar/Jun/Sep/Dec; z(trait) = (trait - 50) / 20)
--------------------------------------------------------------------------------------------

Managers. Incumbents employed on the start date plus Poisson(0.11 x n x years) joiners hired
uniformly in the window (half first-time managers with tenure 0). Level first_line/middle/senior
(55/33/12%), function, region, team size ~ lognormal (median 8 first-line, 6 otherwise, 1-60),
correlated Big Five (0-100). Attrition: daily hazard 0.11/365 x exp(0.35 z(N)
- 0.30 (engagement - 68) / 12 - 0.25 senior - 0.1) sets ``leave_date``. Hidden: competency
potential mu (1-5, per competency; higher with conscientiousness, agreeableness, tenure),
team-engagement potential, coachability u ~ N(0, 0.5), self-rating inflation, rater-group bias,
survey response rates.

Latent state. Competencies theta (1-5) and team engagement E (0-100). Per period, without
nudges: theta += 0.25 (mu - theta) + eps (eps = shared N(0, 0.05) + per-competency N(0, 0.07));
E += 0.30 (mu_E - E) + N(0, 3). New managers start 0.35 exp(-tenure / 18) below potential.

Nudge types. Ten global types (``catalogue.NUDGE_TYPES``); each org uses 6-10, each tied to one
of its 5-8 competencies, with 3-5 nudges per type (plus a few global ones). A nudge-type decision
sends n = 2 + Poisson(org cadence 1-3.5) nudges (at most 12) over the period, the first on the
decision day. Each is opened with p_open(n) = sigmoid(0.8 + 0.3 z(C) + 0.2 z(O)
- 0.2 log(team / 7) - 0.2 max(n - 3, 0)) and, if opened, acted on with p_act = sigmoid(-0.6
+ 0.5 z(C) + 0.25 z(O) + u + type fit). Effects act only if the manager acted on at least one:
dose = 1{acted} x 0.88^max(n - 4, 0) (fatigue); expected dose = sum_n P(n) 0.88^max(n-4,0)
(1 - (1 - p_open(n) p_act)^n).

Effect given action (targeted competency, 1-5 points; ``effects.effect_given_action``), with
s = (mean theta - 3.45) / 0.35, e = (E - 68) / 10, novice = exp(-tenure / 18),
lt = log(team / 7):
  recognition            0.10 - 0.15 e + 0.08 z(A)
  coaching_question      0.05 + 0.25 z(O) - 0.08 first_line     (hurts closed managers)
  feedback_request       0.10 - 0.22 s - 0.15 z(N)              (helps low scorers; hurts
                                                                  anxious high scorers)
  delegation             0.02 + 0.25 lt + 0.12 senior - 0.12 first_line  (hurts small teams)
  one_on_one_prep        0.06 + 0.28 novice - 0.05 lt
  goal_clarity           0.16 - 0.14 z(C)                       (best on average)
  wellbeing_checkin      0.02 + 0.08 z(A) - 0.06 e
  decision_transparency  0.02 + 0.20 senior + 0.06 z(O)
  growth_conversation    0.04 + 0.20 z(E) - 0.15 novice
  team_celebration       0.12 z(E) + 0.08 lt
Half of it spills over to the org's other competencies. Engagement effects given action
(points) likewise depend on the profile (e.g. recognition 2.0 - 1.5 e, wellbeing 2.5 - 1.5 e,
delegation 0.8 lt - 1.0 first_line). Ceilings: an effect is scaled by the headroom towards
the end it pushes to, falling linearly from 1 to 0 over the last quarter of the scale
(theta 4-5, E 75-100). Fatigue also costs 0.6 engagement points per nudge beyond 4.

Observation. 360 per competency and rater role: self 1 rater (92% respond), manager 1 (95%),
peers Binomial(6, 0.55), direct reports Binomial(min(team, 12), response rate); role with no
rater has no row. Score = clip(theta + leniency (self +0.25 more, on average) + rater-group bias
N(0, 0.12) + halo N(0, 0.30)/sqrt(n) + item N(0, 0.35)/sqrt(n), 1, 5). Engagement =
clip(E + N(0, 18/sqrt(n_respondents)) + N(0, 1.5), 0, 100), n_respondents ~
Binomial(team, response rate). Managers are rated from 60 days (engagement 30) after hire.

Logging policy (``policy``): softmax over ``none`` + available types on observable features,
75% softmax + 25% uniform over available arms (every arm >= 0.023); the logged propensity is the
probability used to sample. Ground truth (``effects.expected_changes``): for each decided
manager, period and arm, drift + expected dose x effect (with ceilings) + expected fatigue cost;
it is the expectation of the latent change, which the observed 360 tracks up to clipping at 1/5.
Differences between arms are what matter: the level of the observed change also carries
regression to the mean of the observation noise (the policy reacts to observed scores), which is
the same for every arm given the observed features. Truth rows exist for every decided manager,
also those who leave before the next wave (their outcome is unobserved).

Signal strength (seed 1, 5,000 managers): mean over manager-periods of (best arm - mean over
arms) of the true delta_360 is about 0.4 of the residual SD of an observed period change
(about 0.21); a per-type LightGBM T-learner on 20,000 managers x 2 years, evaluated on held-out
managers, recovers a policy worth ~0.08 vs 0.05 for the best single type and 0.11 for the
oracle (true delta_360 per period).

Closed loop: ``World(config)``, then per period ``world.decision_frame()`` (observable context),
``world.run_period(Assignment(...))`` with any policy's choices and propensities;
``world.tables()`` / ``world.ground_truth()`` give the data so far.
"""

from recommender.simulation.config import SimulationConfig
from recommender.simulation.simulate import SimulatedOrganisation, simulate_organisation
from recommender.simulation.world import ARMS, Assignment, World
from recommender.simulation.writer import write_simulation

__all__ = [
    "ARMS",
    "Assignment",
    "SimulatedOrganisation",
    "SimulationConfig",
    "World",
    "simulate_organisation",
    "write_simulation",
]
