// serverless.yml `params`: the defaults (serverless.yml custom.defaultParams) and, for the stage being packaged
// or deployed, the stage's own file params/<stage>.yml when there is one. osls takes a --param value first, then
// the stage's file, then the default, so a redeploy of a stage reuses what its file holds and nothing has to be
// typed again. stack/params.js refuses a name that is not a parameter (a typo would otherwise be ignored).
'use strict';

/** The stage (--stage, default dev) and the parameters its file holds ({} without a file). */
async function stageValues(resolveVariable) {
  const stage = String(await resolveVariable('sls:stage'));
  const values = await resolveVariable(`file(./params/${stage}.yml), null`);
  return { stage, file: `params/${stage}.yml`, values: values && typeof values === 'object' ? values : {} };
}

async function params({ resolveVariable }) {
  const { stage, values } = await stageValues(resolveVariable);
  return { default: await resolveVariable('self:custom.defaultParams'), [stage]: values };
}

module.exports = { params, stageValues };
