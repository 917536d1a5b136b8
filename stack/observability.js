// Alarms and a dashboard, computed from the stack parameters:
//   alarms     each DLQ holds a message; the oldest message of the segments queue is older than
//              queueAgeAlarmSeconds; an upload failed; a cleanup deletion failed; the cleanup function failed.
//              With alarmTopicArn set, every alarm notifies that SNS topic (and again when it is OK).
//   dashboard  upload lag (the announcement age of stored segments), throughput, queue depths and DLQs.
// Metric names and dimensions repeat src/core/metrics.ts (this file is loaded by osls as CommonJS);
// test/stack.test.ts checks that both agree.
'use strict';

const NAMESPACE = 'BucketStorage';
const SERVICE = 'bucket-storage';

const param = async (resolveVariable, name) => String((await resolveVariable(`param:${name}`)) ?? '');

/** One alarm: `metric` above `threshold` over one `period`; missing data is not an alarm. */
function alarm(description, metric, threshold, topic, period = 60) {
  const actions = topic === '' ? {} : { AlarmActions: [topic], OKActions: [topic] };
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      ...metric,
      Period: period,
      EvaluationPeriods: 1,
      Threshold: threshold,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      ...actions,
    },
  };
}

const sqs = (metricName, queue) => ({ Namespace: 'AWS/SQS', MetricName: metricName, Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue, 'QueueName'] } }], Statistic: 'Maximum' });
const ours = (metricName, dimensions) => ({
  Namespace: NAMESPACE,
  MetricName: metricName,
  Dimensions: [{ Name: 'service', Value: SERVICE }, ...Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value }))],
  Statistic: 'Sum',
});

/** The dashboard's body: CloudWatch's JSON, with ${…} references that Fn::Sub fills in. */
function dashboardBody() {
  const region = '${AWS::Region}';
  const queue = (name) => '${' + name + '.QueueName}';
  const custom = (metric, dims, stat, label) => [NAMESPACE, metric, 'service', SERVICE, ...Object.entries(dims).flat(), { stat, label }];
  const widget = (x, y, title, metrics, extra = {}) => ({ type: 'metric', x, y, width: 12, height: 6, properties: { title, region, view: 'timeSeries', stat: 'Maximum', period: 60, metrics, ...extra } });
  return JSON.stringify({
    widgets: [
      widget(0, 0, 'Upload lag: announcement age when stored (s)', [
        custom('AnnouncementAge', { function: 'upload', outcome: 'uploaded' }, 'Maximum', 'max'),
        custom('AnnouncementAge', { function: 'upload', outcome: 'uploaded' }, 'p50', 'median'),
      ]),
      widget(12, 0, 'Upload throughput', [
        custom('SegmentBytes', { function: 'upload', outcome: 'uploaded' }, 'Sum', 'bytes stored'),
        custom('UploadThroughput', { function: 'upload', outcome: 'uploaded' }, 'Average', 'MiB/s per segment'),
        custom('Segments', { function: 'upload', outcome: 'failed' }, 'Sum', 'failed uploads'),
      ]),
      widget(0, 6, 'Queue depths', [
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue('SegmentsQueue'), { label: 'segments' }],
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue('DeletionsQueue'), { label: 'deletions' }],
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue('SegmentsDeadLetterQueue'), { label: 'segments DLQ' }],
        ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue('DeletionsDeadLetterQueue'), { label: 'deletions DLQ' }],
      ]),
      widget(12, 6, 'Oldest message in the segments queue (s)', [['AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', queue('SegmentsQueue'), { label: 'oldest' }]]),
    ],
  });
}

module.exports = {
  resources: async ({ resolveVariable }) => {
    const topic = await param(resolveVariable, 'alarmTopicArn');
    const maxAge = Number(await param(resolveVariable, 'queueAgeAlarmSeconds'));
    return {
      SegmentsDeadLetterAlarm: alarm('A segment announcement reached the DLQ: it could not be stored (see the upload logs)', sqs('ApproximateNumberOfMessagesVisible', 'SegmentsDeadLetterQueue'), 0, topic),
      DeletionsDeadLetterAlarm: alarm('A deletion announcement reached the DLQ (see the cleanup logs)', sqs('ApproximateNumberOfMessagesVisible', 'DeletionsDeadLetterQueue'), 0, topic),
      SegmentsQueueAgeAlarm: alarm(`The oldest segment announcement waits more than ${maxAge} s: uploads are not keeping up`, sqs('ApproximateAgeOfOldestMessage', 'SegmentsQueue'), maxAge, topic),
      UploadErrorsAlarm: alarm('An upload failed (metric Segments, outcome failed; by errorCode in the logs)', ours('Segments', { function: 'upload', outcome: 'failed' }), 0, topic, 300),
      CleanupFailuresAlarm: alarm('A deletion failed in at least one registered bucket (metric DeletionsFailed)', ours('DeletionsFailed', { function: 'cleanup' }), 0, topic, 300),
      CleanupErrorsAlarm: alarm('The cleanup function failed', { Namespace: 'AWS/Lambda', MetricName: 'Errors', Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'CleanupLambdaFunction' } }], Statistic: 'Sum' }, 0, topic, 300),
      Dashboard: { Type: 'AWS::CloudWatch::Dashboard', Properties: { DashboardBody: { 'Fn::Sub': dashboardBody() } } },
    };
  },
  outputs: { DashboardName: { Value: { Ref: 'Dashboard' } } },
};
