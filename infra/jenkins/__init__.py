"""Jenkins on AWS, one component per concern: the agents that run builds, their boot, JENKINS_HOME's
snapshots and the Session Manager access to the controller."""
